package store

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// Scrubbing. bbolt is copy-on-write: a rewritten or deleted record's old
// page goes to the free list with its bytes intact until the page is reused,
// so a deleted key's sealed blobs (and older versions of them) would stay in
// the file. After every delete, and once at open (a crash may have come
// between a delete and its scrub), scrub overwrites every free page with
// zeros through a file handle of its own and syncs.
//
// This is safe only for pages no reader can reach. A page freed by a
// committed transaction stays "pending" while an older read transaction
// might still read it; scrub therefore holds readers exclusively (every read
// goes through view) and runs in a write transaction that changes nothing
// and is rolled back: bbolt releases all pending pages when a write
// transaction begins with no reader open, so every page it then reports
// free belongs to no committed tree except the one before the last, which
// bbolt uses only if the last meta page, already synced, is unreadable.

// scrub zeroes the file's free pages and syncs them; it returns how many
// pages it had to overwrite.
func (s *Bolt) scrub() (int, error) {
	s.readers.Lock()
	defer s.readers.Unlock()
	n := 0
	// A write transaction, never committed: it excludes other writers while
	// pages are zeroed and releases pending pages when it begins; it
	// changes nothing, so rolling it back costs no meta-page write or sync.
	tx, err := s.db.Begin(true)
	if err != nil {
		return 0, fmt.Errorf("store: scrubbing free pages: %w", err)
	}
	defer tx.Rollback()
	err = func() error {
		ps := tx.DB().Info().PageSize
		buf := make([]byte, ps)
		zero := make([]byte, ps)
		// Pages 0 and 1 are the meta pages.
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil {
				return err
			}
			if info == nil {
				break
			}
			if info.Type != "free" {
				continue
			}
			off := int64(id) * int64(ps)
			if _, err := s.scrubFile.ReadAt(buf, off); err != nil {
				return fmt.Errorf("reading free page %d: %w", id, err)
			}
			if bytes.Equal(buf, zero) {
				continue
			}
			if _, err := s.scrubFile.WriteAt(zero, off); err != nil {
				return fmt.Errorf("zeroing free page %d: %w", id, err)
			}
			n++
		}
		if n > 0 && !s.opts.noSync {
			if err := fdatasync(s.scrubFile); err != nil {
				return fmt.Errorf("syncing zeroed pages: %w", err)
			}
		}
		return nil
	}()
	if err != nil {
		return n, fmt.Errorf("store: scrubbing free pages: %w", err)
	}
	return n, nil
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
