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
	"time"

	"github.com/quorumd/quorumd/daemon/client"
)

// Errors the subcommands return; main maps errUsage to exit status 2.
var (
	// errUsage: bad flags or arguments (the client's, so that its checks
	// of a driver's arguments are usage errors too).
	errUsage = client.ErrUsage
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

// normalizeURL is client.ParseBase: "http(s)://host:port[/prefix]" or a
// bare "host:port" (taken as http), without a trailing slash; its errors
// are usage errors.
func normalizeURL(s string) (string, error) { return client.ParseBase(s) }

// signerIndexes parses -signers: the daemon indexes it lists, or all n
// when it is empty.
func signerIndexes(spec string, n int) ([]int, error) {
	if spec != "" {
		return parseIndexes(spec, n)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx, nil
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

// msf is a duration in milliseconds (for JSON).
func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}
