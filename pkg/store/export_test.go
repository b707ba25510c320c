package store

import (
	"context"

	"github.com/decisiongraph/dg/pkg/event"
)

// AppendBatchForTest runs envs through one append transaction in the given
// order, exactly as the appender does with a batch it gathered, so tests can
// pin what a later event of a batch sees of an earlier one.
func AppendBatchForTest(ctx context.Context, s *Store, tenant string, envs []*event.Envelope) ([]*AppendResult, []error, error) {
	reqs := make([]*appendReq, 0, len(envs))
	res := make([]*AppendResult, len(envs))
	errs := make([]error, len(envs))
	idx := make([]int, 0, len(envs))
	for i, env := range envs {
		p, err := prepare(tenant, env, s.evOpts)
		if err != nil {
			errs[i] = err
			continue
		}
		reqs = append(reqs, &appendReq{ctx: ctx, p: p, done: make(chan appendAns, 1)})
		idx = append(idx, i)
	}
	answers, head, err := s.appendTx(ctx, reqs)
	if err != nil {
		return nil, nil, err
	}
	for j, a := range answers {
		res[idx[j]], errs[idx[j]] = a.res, a.err
	}
	if head > 0 {
		s.publish(head)
	}
	return res, errs, nil
}
