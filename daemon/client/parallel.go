package client

import (
	"context"
	"errors"
	"sync"
)

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
