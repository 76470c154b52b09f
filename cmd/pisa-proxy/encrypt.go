package main

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"

	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// encryptFlags are the flags of "pisa-proxy encrypt rotate|migrate".
type encryptFlags struct {
	config, listener, node, table, key string
	columns                            []string
	batch                              int
}

// newEncryptCmd is "pisa-proxy encrypt": maintenance of a listener's
// encrypted tables, run against the backend directly.
func newEncryptCmd() *cobra.Command {
	enc := &cobra.Command{
		Use:   "encrypt",
		Short: "maintain the encrypted tables of a security claim (rotate keys, migrate plaintext)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Usage()
			return fmt.Errorf("a subcommand is required: rotate or migrate")
		},
	}
	for _, sub := range []struct {
		use, short string
		fromPlain  bool
	}{
		{"rotate", "re-encrypt with the active key every value encrypted with another key", false},
		{"migrate", "encrypt the plain column into the cipher (and assisted) column where the cipher column is NULL", true},
	} {
		f := &encryptFlags{}
		fromPlain := sub.fromPlain
		c := &cobra.Command{
			Use:   sub.use,
			Short: sub.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runEncrypt(cmd, f, fromPlain)
			},
		}
		fl := c.Flags()
		fl.StringVarP(&f.config, "config", "c", "etc/config.toml", "configuration file (.toml or .json) with the listener's security_claim and keys")
		fl.StringVar(&f.listener, "listener", "", "listener name (default: the only listener with a security_claim)")
		fl.StringVar(&f.node, "node", "", "[[mysql.node]] to connect to (default: the listener's first readwrite node)")
		fl.StringVar(&f.table, "table", "", "encrypted table (required)")
		fl.StringVar(&f.key, "key-column", "id", "unique, non-NULL column the rows are walked by, in batches")
		fl.StringSliceVar(&f.columns, "column", nil, "logical column(s) to process (default: every encrypted column of the table)")
		fl.IntVar(&f.batch, "batch", 500, "rows per batch (one transaction each)")
		enc.AddCommand(c)
	}
	return enc
}

func runEncrypt(cmd *cobra.Command, f *encryptFlags, fromPlain bool) error {
	if f.table == "" {
		return fmt.Errorf("--table is required")
	}
	cfg, err := proxyconfig.Load(f.config)
	if err != nil {
		return err
	}
	var lc *proxyconfig.Listener
	for i := range cfg.Proxy.Config {
		l := &cfg.Proxy.Config[i]
		if l.SecurityClaim == nil || (f.listener != "" && l.Name != f.listener) {
			continue
		}
		if lc != nil {
			return fmt.Errorf("several listeners have a security_claim: choose one with --listener")
		}
		lc = l
	}
	if lc == nil {
		return fmt.Errorf("no listener with a security_claim in %s", f.config)
	}
	sc, err := crypt.Compile(lc.SecurityClaim)
	if err != nil {
		return err
	}
	var node *proxyconfig.Node
	if f.node != "" {
		node = cfg.Node(f.node)
	} else {
		for _, n := range lc.PoolNodeNames(cfg) {
			if nd := cfg.Node(n); nd != nil && nd.Role != proxyconfig.RoleRead {
				node = nd
				break
			}
		}
	}
	if node == nil {
		return fmt.Errorf("no backend node to connect to (use --node)")
	}
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr, mc.DBName = node.User, node.Password, "tcp", node.Addr(), node.DB
	if mc.DBName == "" {
		mc.DBName = lc.DB
	}
	mc.Timeout = 10 * time.Second
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	out := cmd.OutOrStdout()
	start := time.Now()
	pr, err := sc.Rotate(cmd.Context(), db, crypt.RotateOptions{
		Table: f.table, KeyColumn: f.key, Columns: f.columns, Batch: f.batch, FromPlain: fromPlain,
		Progress: func(p crypt.RotateProgress) {
			fmt.Fprintf(out, "%s.%s: %d values scanned, %d updated, up to %s=%s (%s)\n", f.table, p.Column, p.Scanned, p.Updated, f.key, p.LastKey,
				time.Since(start).Round(time.Millisecond))
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: done, %d values scanned, %d updated (active key %q)\n", f.table, pr.Scanned, pr.Updated, sc.Keys.Active())
	return nil
}
