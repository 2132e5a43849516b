package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/quorumd/quorumd/internal/uuid"
)

// Policy and rule administration on the embedded file (PolicyAdmin): each
// operation runs under the file lock, so checks and writes are atomic.

// decodePolicy decodes and validates a stored policy record.
func decodePolicy(id string, raw json.RawMessage) (Policy, error) {
	var p Policy
	if err := decodeBody(bytes.NewReader(raw), &p, true); err != nil {
		return Policy{}, fmt.Errorf("%w: policy %s: %w", ErrSourceInvalid, id, err)
	}
	p.Name = id
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrSourceInvalid, err)
	}
	return p, nil
}

func decodeRule(id string, raw json.RawMessage) (Rule, error) {
	var r Rule
	if err := decodeBody(bytes.NewReader(raw), &r, true); err != nil {
		return Rule{}, fmt.Errorf("%w: rule %s: %w", ErrSourceInvalid, id, err)
	}
	r.ID = id
	if err := r.Validate(); err != nil {
		return Rule{}, fmt.Errorf("%w: rule %s: %w", ErrSourceInvalid, id, err)
	}
	return r, nil
}

func (st *fileState) rule(id string) (Rule, error) {
	raw, ok := st.Rules[id]
	if !ok {
		return Rule{}, ErrNotFound
	}
	return decodeRule(id, raw)
}

func (st *fileState) policy(id string) (Policy, error) {
	raw, ok := st.Policies[id]
	if !ok {
		return Policy{}, errPolicyNotFound
	}
	return decodePolicy(id, raw)
}

func (st *fileState) putPolicy(p *Policy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("policy: encode policy: %w", err)
	}
	st.Policies[p.Name] = raw
	return nil
}

// view runs fn on the current content under the in-process lock.
func (s *FileSource) view(fn func(*fileState) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return err
	}
	return fn(s.st)
}

// CreatePolicy implements PolicyAdmin.
func (s *FileSource) CreatePolicy(_ context.Context, name string, ruleIDs []string) (Policy, error) {
	ids, err := checkNewPolicy(name, ruleIDs)
	if err != nil {
		return Policy{}, err
	}
	t := now()
	p := Policy{Name: uuid.New(), DisplayName: name, Rules: ids, CreatedAt: &t}
	err = s.update(func(st *fileState) error {
		for id, raw := range st.Policies {
			if id == name {
				return errUnique("policy")
			}
			if q, err := decodePolicy(id, raw); err == nil && q.DisplayName == name {
				return errUnique("policy")
			}
		}
		for _, r := range ids {
			if _, ok := st.Rules[r]; !ok {
				return errRuleNotFound
			}
		}
		return st.putPolicy(&p)
	})
	if err != nil {
		return Policy{}, err
	}
	return p, nil
}

// ListPolicies implements PolicyAdmin.
func (s *FileSource) ListPolicies(context.Context) ([]Policy, error) {
	var out []Policy
	err := s.view(func(st *fileState) error {
		for id, raw := range st.Policies {
			p, err := decodePolicy(id, raw)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	sortPolicies(out)
	return out, err
}

// PolicyRecord implements PolicyAdmin.
func (s *FileSource) PolicyRecord(_ context.Context, id string) (Policy, error) {
	var p Policy
	err := s.view(func(st *fileState) (err error) { p, err = st.policy(id); return err })
	return p, err
}

// DeletePolicy implements PolicyAdmin.
func (s *FileSource) DeletePolicy(_ context.Context, id string) error {
	return s.update(func(st *fileState) error {
		if _, ok := st.Policies[id]; !ok {
			return errPolicyNotFound
		}
		for _, u := range st.Users {
			if u.Policy == id {
				return errPolicyInUse
			}
		}
		delete(st.Policies, id)
		return nil
	})
}

// AddPolicyRules implements PolicyAdmin.
func (s *FileSource) AddPolicyRules(_ context.Context, id string, ruleIDs []string) error {
	ids, err := checkRuleIDs(ruleIDs)
	if err != nil {
		return err
	}
	return s.update(func(st *fileState) error {
		p, err := st.policy(id)
		if err != nil {
			return err
		}
		for _, r := range ids {
			if _, ok := st.Rules[r]; !ok {
				return errRuleNotFound
			}
		}
		if err := addRules(&p, ids); err != nil {
			return err
		}
		return st.putPolicy(&p)
	})
}

// RemovePolicyRule implements PolicyAdmin.
func (s *FileSource) RemovePolicyRule(_ context.Context, id, ruleID string) error {
	return s.update(func(st *fileState) error {
		p, err := st.policy(id)
		if err != nil {
			return err
		}
		if _, ok := st.Rules[ruleID]; !ok {
			return errRuleNotFound
		}
		if err := removeRule(&p, ruleID); err != nil {
			return err
		}
		return st.putPolicy(&p)
	})
}

// CreateRule implements PolicyAdmin.
func (s *FileSource) CreateRule(_ context.Context, r Rule) (Rule, error) {
	if err := checkNewRule(&r); err != nil {
		return Rule{}, err
	}
	r.ID, r.CreatedAt = uuid.New(), now()
	raw, err := json.Marshal(&r)
	if err != nil {
		return Rule{}, fmt.Errorf("policy: encode rule: %w", err)
	}
	err = s.update(func(st *fileState) error {
		for id, raw := range st.Rules {
			if q, err := decodeRule(id, raw); err == nil && q.Name == r.Name {
				return errUnique("rule")
			}
		}
		st.Rules[r.ID] = raw
		return nil
	})
	if err != nil {
		return Rule{}, err
	}
	return r, nil
}

// ListRules implements PolicyAdmin.
func (s *FileSource) ListRules(context.Context) ([]Rule, error) {
	var out []Rule
	err := s.view(func(st *fileState) error {
		for id, raw := range st.Rules {
			r, err := decodeRule(id, raw)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	sortRules(out)
	return out, err
}

// GetRule implements PolicyAdmin.
func (s *FileSource) GetRule(_ context.Context, id string) (Rule, error) {
	var r Rule
	err := s.view(func(st *fileState) (err error) {
		if r, err = st.rule(id); isNotFound(err) {
			return errRuleNotFound
		}
		return err
	})
	return r, err
}

// DeleteRule implements PolicyAdmin.
func (s *FileSource) DeleteRule(_ context.Context, id string) error {
	return s.update(func(st *fileState) error {
		if _, ok := st.Rules[id]; !ok {
			return errRuleNotFound
		}
		for pid, raw := range st.Policies {
			p, err := decodePolicy(pid, raw)
			if err == nil && slices.Contains(p.Rules, id) {
				return errRuleInUse
			}
		}
		delete(st.Rules, id)
		return nil
	})
}

// AssignPolicy implements PolicyAdmin.
func (s *FileSource) AssignPolicy(_ context.Context, userID, policyID string) error {
	return s.update(func(st *fileState) error {
		u, ok := st.Users[userID]
		if !ok {
			return errUserNotFound
		}
		if policyID != "" {
			if _, ok := st.Policies[policyID]; !ok {
				return errPolicyNotFound
			}
		}
		u.Policy = policyID
		return nil
	})
}

// GenerateAPIKey implements PolicyAdmin.
func (s *FileSource) GenerateAPIKey(_ context.Context, userID string) (string, error) {
	key, lookupID, digest, err := newAPIKey()
	if err != nil {
		return "", err
	}
	err = s.update(func(st *fileState) error {
		u, ok := st.Users[userID]
		if !ok {
			return errUserNotFound
		}
		u.APIKeys = append(u.APIKeys, lookupID)
		st.APIKeys[lookupID] = &APIKeyRecord{UserID: userID, SecretSHA256: digest, CreatedAt: now()}
		return nil
	})
	if err != nil {
		return "", err
	}
	return key, nil
}
