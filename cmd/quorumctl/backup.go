package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/quorumd/quorumd/internal/agekey"
)

func readIdentities(file string) ([]age.Identity, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ids, nil
}

// decryptBackup opens an age-encrypted backup with the operator's
// identities; a backup encrypted to anyone else fails here.
func decryptBackup(b []byte, ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(b), ids...)
	if err != nil {
		return nil, fmt.Errorf("decrypting the backup (is it encrypted to this identity?): %w", err)
	}
	return io.ReadAll(r)
}

func runBackupCmd(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef("usage: quorumctl backup export|import|identity [flags]")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("quorumctl backup "+sub, flag.ContinueOnError)
	var h httpFlags
	h.register(fs, time.Minute)
	daemon := fs.String("daemon", "", "daemon base URL")
	key := fs.String("key", "", "API key of a user (prefer QUORUMCTL_KEY)")
	keyID := fs.String("key-id", "", "export: the key to back up")
	file := fs.String("file", "", "export: where to write the backup; import: the backup to restore; identity: where to write the new age identity")
	identity := fs.String("identity", "", "the operator's age identity file (import: decrypts the backup; export: checks that it opens)")
	switch sub {
	case "export", "import", "identity":
	default:
		return usagef("unknown backup subcommand %q: want export, import or identity", sub)
	}
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	out := h.printer(c)
	if sub == "identity" {
		// The operator's backup key pair: recipient_pubkey goes into a
		// policy rule's allow_backup_export (or the recipient into the
		// daemon's backup.recipient).
		if *file == "" {
			return usagef("-file is required")
		}
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return err
		}
		content := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
		if err := os.WriteFile(*file, []byte(content), 0o600); err != nil {
			return err
		}
		raw, err := agekey.Hex(id.Recipient())
		if err != nil {
			return err
		}
		res := struct {
			Recipient       string `json:"recipient"`
			RecipientPubkey string `json:"recipient_pubkey"`
		}{id.Recipient().String(), raw}
		return out.result(res, func(w io.Writer) {
			fmt.Fprintf(w, "recipient: %s\nrecipient_pubkey: %s\n", res.Recipient, res.RecipientPubkey)
		})
	}
	if *daemon == "" || *key == "" || *file == "" {
		return usagef("-daemon, -key and -file are required")
	}
	cl, ctx, cancel, err := h.client(ctx, *daemon, *key)
	if err != nil {
		return err
	}
	defer cancel()
	switch sub {
	case "export":
		if *keyID == "" {
			return usagef("-key-id is required")
		}
		typ, b, err := cl.ExportBackup(ctx, *keyID)
		if err != nil {
			return err
		}
		defer clear(b)
		if *identity != "" && typ == "encrypted" {
			ids, err := readIdentities(*identity)
			if err != nil {
				return err
			}
			plain, err := decryptBackup(b, ids)
			if err != nil {
				return err
			}
			clear(plain)
		}
		if err := os.WriteFile(*file, b, 0o600); err != nil {
			return err
		}
		res := struct {
			KeyID      string `json:"key_id"`
			ExportType string `json:"export_type"`
			File       string `json:"file"`
		}{*keyID, typ, *file}
		return out.result(res, func(w io.Writer) {
			fmt.Fprintf(w, "key_id: %s\nexport_type: %s\nbackup: %s\n", res.KeyID, res.ExportType, res.File)
		})
	default: // import
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		defer clear(b)
		plain := b
		if strings.HasPrefix(string(b[:min(len(b), 21)]), "age-encryption.org/v1") {
			if *identity == "" {
				return usagef("the backup is encrypted: -identity (the operator's age identity file) is required")
			}
			ids, err := readIdentities(*identity)
			if err != nil {
				return err
			}
			if plain, err = decryptBackup(b, ids); err != nil {
				return err
			}
			defer clear(plain)
		}
		keyID, pk, err := cl.ImportBackup(ctx, plain)
		if err != nil {
			return err
		}
		res := struct {
			KeyID  string `json:"key_id"`
			Pubkey string `json:"pubkey"`
		}{keyID, fmt.Sprintf("%x", pk)}
		return out.result(res, func(w io.Writer) { fmt.Fprintf(w, "key_id: %s\npubkey: %s\n", res.KeyID, res.Pubkey) })
	}
}

func runDeleteKeyCmd(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("quorumctl delete-key", flag.ContinueOnError)
	var h httpFlags
	h.register(fs, 30*time.Second)
	daemon := fs.String("daemon", "", "daemon base URL")
	key := fs.String("key", "", "API key of a user (prefer QUORUMCTL_KEY)")
	keyID := fs.String("key-id", "", "the key share to delete (irreversible)")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if *daemon == "" || *key == "" || *keyID == "" {
		return usagef("-daemon, -key and -key-id are required")
	}
	cl, ctx, cancel, err := h.client(ctx, *daemon, *key)
	if err != nil {
		return err
	}
	defer cancel()
	if err := cl.DeleteKey(ctx, *keyID); err != nil {
		return err
	}
	return h.printer(c).result(map[string]string{"deleted": *keyID}, func(w io.Writer) { fmt.Fprintf(w, "deleted: %s\n", *keyID) })
}
