package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// FileSource is the embedded source for a single host without Vault: one
// JSON file (mode 0600) holding users, API key digests and policies. Reads
// pick up changes made by other processes (quorumctl, an operator editing
// the file) by checking the file's identity; writes take an exclusive flock
// on "<path>.lock", re-read the file and replace it atomically (temp file,
// fsync, rename, fsync of the directory). Safe for concurrent use.
type FileSource struct {
	path string

	mu    sync.Mutex
	st    *fileState
	stamp fileStamp
}

// fileState is the file's content.
type fileState struct {
	Version int                      `json:"version"`
	Users   map[string]*userRecord   `json:"users"`
	APIKeys map[string]*APIKeyRecord `json:"api_keys"`
	// Policies stay raw until used, so one malformed policy (a hand edit
	// gone wrong) denies only its users instead of invalidating the file.
	Policies map[string]json.RawMessage `json:"policies"`
	// Rules of rule-set policies (raw for the same reason).
	Rules map[string]json.RawMessage `json:"rules,omitempty"`
}

const fileFormatVersion = 1

// fileStamp identifies one version of the file: atomic replacement changes
// the inode, in-place edits change size or mtime.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
	ctime syscall.Timespec
}

// OpenFile opens (creating if absent, with mode 0600) the JSON file at path.
// A file readable or writable by group or others is refused.
func OpenFile(path string) (*FileSource, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: file source: empty path", ErrConfig)
	}
	s := &FileSource{path: path}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := s.update(func(*fileState) error { return nil }); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// Name implements Source.
func (s *FileSource) Name() string { return "file:" + s.path }

// Ping implements Source: the file is readable and valid.
func (s *FileSource) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshLocked()
}

// Close implements Source.
func (s *FileSource) Close() error { return nil }

// LookupAPIKey implements Source.
func (s *FileSource) LookupAPIKey(_ context.Context, lookupID string) (APIKeyRecord, error) {
	if !validLookupID(lookupID) {
		return APIKeyRecord{}, ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return APIKeyRecord{}, err
	}
	r, ok := s.st.APIKeys[lookupID]
	if !ok {
		return APIKeyRecord{}, ErrNotFound
	}
	out := *r
	out.LookupID = lookupID
	return out, nil
}

// GetUser implements Source.
func (s *FileSource) GetUser(_ context.Context, userID string) (User, error) {
	if !validUserID(userID) {
		return User{}, ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return User{}, err
	}
	u, ok := s.st.Users[userID]
	if !ok {
		return User{}, ErrNotFound
	}
	if err := u.validate(userID); err != nil {
		return User{}, err
	}
	return u.user(), nil
}

// GetPolicy implements Source.
func (s *FileSource) GetPolicy(_ context.Context, name string) (Policy, error) {
	if !validName(name) {
		return Policy{}, ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return Policy{}, err
	}
	raw, ok := s.st.Policies[name]
	if !ok {
		return Policy{}, ErrNotFound
	}
	out, err := decodePolicy(name, raw)
	if err != nil {
		return Policy{}, err
	}
	if err := resolvePolicy(&out, s.st.rule); err != nil {
		return Policy{}, err
	}
	return out, nil
}

// PutPolicy implements Source.
func (s *FileSource) PutPolicy(_ context.Context, p Policy) error {
	if err := p.Validate(); err != nil {
		return &Error{Type: ErrTypeBadRequestParams, Msg: err.Error(), Err: err}
	}
	raw, err := json.Marshal(&p)
	if err != nil {
		return fmt.Errorf("policy: encode policy: %w", err)
	}
	return s.update(func(st *fileState) error {
		st.Policies[p.Name] = raw
		return nil
	})
}

// CreateUser implements Source.
func (s *FileSource) CreateUser(_ context.Context, name string, admin bool, policyName string) (string, string, error) {
	return s.createUser(name, admin, policyName, false)
}

func (s *FileSource) createFirstAdmin(_ context.Context, name string) (string, string, error) {
	return s.createUser(name, true, "", true)
}

// createUser adds the user under the file lock; firstAdmin refuses if any
// admin exists, which makes bootstrapping atomic.
func (s *FileSource) createUser(name string, admin bool, policyName string, firstAdmin bool) (string, string, error) {
	if err := checkCreateUser(name, policyName); err != nil {
		return "", "", err
	}
	key, lookupID, digest, err := newAPIKey()
	if err != nil {
		return "", "", err
	}
	userID, err := newUserID()
	if err != nil {
		return "", "", err
	}
	err = s.update(func(st *fileState) error {
		for _, u := range st.Users {
			if firstAdmin && u.Admin {
				return ErrAdminExists
			}
		}
		for _, u := range st.Users {
			if name != "" && u.Name == name {
				return typed(ErrTypeUserNameAlreadyExists, "user name already exists")
			}
		}
		if policyName != "" {
			if _, ok := st.Policies[policyName]; !ok {
				return typed(ErrTypePolicyNotFound, "policy not found")
			}
		}
		t := now()
		st.Users[userID] = &userRecord{ID: userID, Name: name, Admin: admin, Policy: policyName, CreatedAt: t, APIKeys: []string{lookupID}}
		st.APIKeys[lookupID] = &APIKeyRecord{UserID: userID, SecretSHA256: digest, CreatedAt: t}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return key, userID, nil
}

// RevokeAPIKey implements Source.
func (s *FileSource) RevokeAPIKey(_ context.Context, userID, apiKey string) error {
	lookupID, d, err := parseRevoke(userID, apiKey)
	if err != nil {
		return err
	}
	return s.update(func(st *fileState) error {
		if _, ok := st.Users[userID]; !ok {
			return errUserNotFound
		}
		rec, ok := st.APIKeys[lookupID]
		if !ok {
			return typed(ErrTypeAPIKeyNotFound, "api key not found")
		}
		rec.LookupID = lookupID
		if err := matchRevoke(rec, userID, d); err != nil {
			return err
		}
		if !rec.Revoked {
			t := now()
			rec.Revoked, rec.RevokedAt = true, &t
		}
		return nil
	})
}

// DeleteUser implements Source.
func (s *FileSource) DeleteUser(_ context.Context, userID string) error {
	if !validUserID(userID) {
		return errUserNotFound
	}
	return s.update(func(st *fileState) error {
		if _, ok := st.Users[userID]; !ok {
			return errUserNotFound
		}
		for id, k := range st.APIKeys {
			if k.UserID == userID {
				delete(st.APIKeys, id)
			}
		}
		delete(st.Users, userID)
		return nil
	})
}

// ListUsers implements Source.
func (s *FileSource) ListUsers(context.Context) ([]User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	out := make([]User, 0, len(s.st.Users))
	for id, u := range s.st.Users {
		if err := u.validate(id); err != nil {
			return nil, err
		}
		out = append(out, u.user())
	}
	sortUsers(out)
	return out, nil
}

// refreshLocked reloads the file if it changed since it was last read.
func (s *FileSource) refreshLocked() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("%w: file source: %w", ErrSourceUnavailable, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: file source %s: mode %v is readable or writable by others; want 0600", ErrConfig, s.path, fi.Mode().Perm())
	}
	st := stampOf(fi)
	if s.st != nil && st == s.stamp {
		return nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("%w: file source: %w", ErrSourceUnavailable, err)
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return fmt.Errorf("%w: file source: %w", ErrSourceUnavailable, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: file source: %w", ErrSourceUnavailable, err)
	}
	state, err := decodeFileState(b)
	if err != nil {
		return fmt.Errorf("%w: file source %s: %w", ErrSourceInvalid, s.path, err)
	}
	s.st, s.stamp = state, stampOf(fi)
	return nil
}

func decodeFileState(b []byte) (*fileState, error) {
	var st fileState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, err
	}
	if st.Version != fileFormatVersion {
		return nil, fmt.Errorf("format version %d, want %d", st.Version, fileFormatVersion)
	}
	if st.Users == nil {
		st.Users = map[string]*userRecord{}
	}
	if st.APIKeys == nil {
		st.APIKeys = map[string]*APIKeyRecord{}
	}
	if st.Policies == nil {
		st.Policies = map[string]json.RawMessage{}
	}
	if st.Rules == nil {
		st.Rules = map[string]json.RawMessage{}
	}
	for id, u := range st.Users {
		if u == nil {
			return nil, fmt.Errorf("user %s: null record", id)
		}
	}
	for id, k := range st.APIKeys {
		if k == nil {
			return nil, fmt.Errorf("api key %s: null record", id)
		}
	}
	return &st, nil
}

func stampOf(fi fs.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino, st.ctime = sys.Ino, sys.Ctim
	}
	return st
}

// update applies fn to the current content under an exclusive lock (in the
// process and across processes) and writes the result atomically. If fn or
// the write fails, the in-memory copy is dropped and re-read next time.
func (s *FileSource) update(fn func(*fileState) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: file source lock: %w", ErrSourceUnavailable, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%w: file source lock: %w", ErrSourceUnavailable, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the fd unlocks anyway

	if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
		s.st = &fileState{Version: fileFormatVersion, Users: map[string]*userRecord{},
			APIKeys: map[string]*APIKeyRecord{}, Policies: map[string]json.RawMessage{}, Rules: map[string]json.RawMessage{}}
		s.stamp = fileStamp{}
	} else if err := s.refreshLocked(); err != nil {
		return err
	}
	if err := fn(s.st); err != nil {
		s.st = nil
		return err
	}
	b, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		s.st = nil
		return fmt.Errorf("policy: file source: encode: %w", err)
	}
	fi, err := writeAtomic(s.path, append(b, '\n'))
	if err != nil {
		s.st = nil
		return err
	}
	s.stamp = stampOf(fi)
	return nil
}

// writeAtomic replaces path with data: a 0600 temp file in the same
// directory, fsync, rename, fsync of the directory. A crash leaves either
// the old or the new file.
func writeAtomic(path string, data []byte) (fs.FileInfo, error) {
	dir := filepath.Dir(path)
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("policy: random: %w", err)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: file source write: %w", ErrSourceUnavailable, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return nil, fmt.Errorf("%w: file source write: %w", ErrSourceUnavailable, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("%w: file source fsync: %w", ErrSourceUnavailable, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("%w: file source write: %w", ErrSourceUnavailable, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("%w: file source rename: %w", ErrSourceUnavailable, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil {
			return nil, fmt.Errorf("%w: file source fsync dir: %w", ErrSourceUnavailable, serr)
		}
	} else {
		return nil, fmt.Errorf("%w: file source fsync dir: %w", ErrSourceUnavailable, err)
	}
	fi, err := os.Stat(path) // after the rename, which changes ctime
	if err != nil {
		return nil, fmt.Errorf("%w: file source write: %w", ErrSourceUnavailable, err)
	}
	return fi, nil
}
