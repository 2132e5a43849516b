package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors the subcommands return; main maps errUsage to exit status 2.
var (
	// errUsage: bad flags or arguments.
	errUsage = errors.New("usage")
	// errMismatch: the daemons of one ceremony disagree (pubkey, signature,
	// key record).
	errMismatch = errors.New("daemons disagree")
	// errBadResponse: a daemon answered 200 with a body that is not what the
	// API promises.
	errBadResponse = errors.New("malformed daemon response")
	// errInvalidSignature: a signature does not verify.
	errInvalidSignature = errors.New("invalid signature")
	// errNotLoopback: bench refuses to load anything but the local machine.
	errNotLoopback = errors.New("not a loopback address")
)

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// normalizeURL accepts "http(s)://host:port[/prefix]" or a bare
// "host:port" (taken as http) and returns it without a trailing slash.
func normalizeURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("daemon URL %q: want http(s)://host:port", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("daemon URL %q: no credentials, query or fragment allowed", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// parseIndexes parses "0,2" into distinct indexes below n.
func parseIndexes(s string, n int) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		i, err := strconv.Atoi(p)
		if err != nil || i < 0 || i >= n {
			return nil, usagef("index %q: want 0..%d", p, n-1)
		}
		if slices.Contains(out, i) {
			return nil, usagef("index %d listed twice", i)
		}
		out = append(out, i)
	}
	return out, nil
}

// checkLoopback fails unless rawURL's host is a loopback address (or
// "localhost" resolving only to loopback addresses).
func checkLoopback(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%s: %w", rawURL, err)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s: %w", rawURL, errNotLoopback)
		}
		return nil
	}
	if host != "localhost" {
		return fmt.Errorf("%s: %w (use an IP literal or localhost)", rawURL, errNotLoopback)
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%s: %w", rawURL, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s: localhost resolves to %s: %w", rawURL, a.IP, errNotLoopback)
		}
	}
	return nil
}

// parallel runs f(ctx, i) for i in [0, n) concurrently and returns the
// errors by index. The first failure cancels the context of the others: a
// multi-party ceremony cannot complete once one party is out, so the rest
// would only wait for the daemons' ceremony timeout.
func parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) []error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := f(ctx, i); err != nil {
				errs[i] = err
				cancel()
			}
		})
	}
	wg.Wait()
	return errs
}

// firstError picks the error to report from parallel's results: a real
// failure rather than a cancellation it caused in the others.
func firstError(errs []error) (int, error) {
	idx := -1
	for i, err := range errs {
		if err == nil {
			continue
		}
		if idx < 0 || (errors.Is(errs[idx], context.Canceled) && !errors.Is(err, context.Canceled)) {
			idx = i
		}
	}
	if idx < 0 {
		return -1, nil
	}
	return idx, errs[idx]
}

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}
