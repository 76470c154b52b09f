package crypt

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// RotateOptions configure Rotate.
type RotateOptions struct {
	Table string
	// KeyColumn is a unique, non-NULL column of the table (usually the
	// primary key) the rows are walked in order of, in batches.
	KeyColumn string
	// Columns are the logical columns to process; empty: every encrypted
	// column of the table.
	Columns []string
	// Batch is the number of rows read per batch (default 500).
	Batch int
	// FromPlain encrypts the plain column into the cipher (and assisted)
	// column for rows whose cipher column is NULL and plain column is not:
	// the migration of an existing table. Without it, values encrypted
	// with another key than the active one are re-encrypted (rotation).
	FromPlain bool
	// Progress is called after each batch.
	Progress func(RotateProgress)
}

// RotateProgress reports how far Rotate got.
type RotateProgress struct {
	Column           string // the logical column being processed
	Scanned, Updated int64
	LastKey          string
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// Rotate re-encrypts (or, with FromPlain, encrypts for the first time)
// the stored values of a table directly on the backend db, in batches of
// rows walked by KeyColumn. Each row is updated only if its stored value
// did not change since it was read, so it can run while the application
// writes through the proxy.
func (s *Schema) Rotate(ctx context.Context, db *sql.DB, o RotateOptions) (RotateProgress, error) {
	var pr RotateProgress
	t := s.Table(o.Table)
	if t == nil {
		return pr, fmt.Errorf("crypt: table %q is not encrypted in this configuration", o.Table)
	}
	if o.KeyColumn == "" {
		return pr, errors.New("crypt: the key column (unique, not NULL) is required")
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	var cols []*Column
	if len(o.Columns) == 0 {
		for _, c := range t.columns {
			cols = append(cols, c)
		}
	} else {
		for _, n := range o.Columns {
			c := t.Column(n)
			if c == nil {
				return pr, fmt.Errorf("crypt: column %q of %s is not encrypted", n, t.Name)
			}
			cols = append(cols, c)
		}
	}
	if o.FromPlain {
		for _, c := range cols {
			if c.Plain == "" {
				return pr, fmt.Errorf("crypt: column %s has no plain_column to encrypt from", c.QualifiedName())
			}
		}
	}
	for _, c := range cols {
		pr.Column = c.Name
		if err := s.rotateColumn(ctx, db, t, c, o, &pr); err != nil {
			return pr, err
		}
	}
	return pr, nil
}

func (s *Schema) rotateColumn(ctx context.Context, db *sql.DB, t *Table, c *Column, o RotateOptions, pr *RotateProgress) error {
	key, tbl := quoteIdent(o.KeyColumn), quoteIdent(t.Name)
	src := quoteIdent(c.Cipher)
	cond := src + " IS NOT NULL"
	if o.FromPlain {
		src = quoteIdent(c.Plain)
		cond = quoteIdent(c.Cipher) + " IS NULL AND " + src + " IS NOT NULL"
	}
	first := true
	var last any
	for {
		q := fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s", key, src, tbl, cond)
		args := []any{}
		if !first {
			q += " AND " + key + " > ?"
			args = append(args, last)
		}
		q += fmt.Sprintf(" ORDER BY %s LIMIT %d", key, o.Batch)
		rows, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("crypt: read %s: %w", t.Name, err)
		}
		type item struct {
			k   any
			val []byte
		}
		var batch []item
		for rows.Next() {
			var k, v sql.RawBytes
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return fmt.Errorf("crypt: read %s: %w", t.Name, err)
			}
			batch = append(batch, item{string(k), append([]byte(nil), v...)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("crypt: read %s: %w", t.Name, err)
		}
		if len(batch) == 0 {
			return nil
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("crypt: %w", err)
		}
		for _, it := range batch {
			pr.Scanned++
			plain := it.val
			if !o.FromPlain {
				id, err := KeyID(it.val)
				if err != nil {
					_ = tx.Rollback()
					return fmt.Errorf("crypt: %s %s=%v: stored value is not a ciphertext: %w", c.QualifiedName(), o.KeyColumn, it.k, err)
				}
				if id == s.Keys.Active() {
					continue
				}
				if plain, err = s.Keys.Decrypt(nil, it.val, c.aad); err != nil {
					_ = tx.Rollback()
					return fmt.Errorf("crypt: %s %s=%v: %w", c.QualifiedName(), o.KeyColumn, it.k, err)
				}
			}
			set := quoteIdent(c.Cipher) + " = ?"
			args := []any{s.Keys.Encrypt(nil, plain, c.aad)}
			if c.Assisted != "" {
				set += ", " + quoteIdent(c.Assisted) + " = ?"
				args = append(args, s.Keys.Assist(nil, plain))
			}
			where := key + " = ? AND " + src + " = ?"
			if o.FromPlain {
				where += " AND " + quoteIdent(c.Cipher) + " IS NULL"
			}
			args = append(args, it.k, it.val)
			res, err := tx.ExecContext(ctx, "UPDATE "+tbl+" SET "+set+" WHERE "+where, args...)
			if err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("crypt: update %s: %w", t.Name, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				pr.Updated++
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("crypt: commit %s: %w", t.Name, err)
		}
		last = batch[len(batch)-1].k
		first = false
		pr.LastKey = fmt.Sprint(last)
		if o.Progress != nil {
			o.Progress(*pr)
		}
	}
}
