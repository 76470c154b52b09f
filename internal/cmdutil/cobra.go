package cmdutil

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/database-mesh/pisanix-go/internal/version"
)

// Setup prepares a cobra program: a bad flag or argument in any command is a UsageError (exit
// 2, the message names it); --version (-V) and a version subcommand print version.For(program);
// cobra prints neither errors nor usage on its own (Exit does).
func Setup(root *cobra.Command, program string) {
	root.SilenceUsage, root.SilenceErrors = true, true
	root.Version = version.For(program)
	root.SetVersionTemplate("{{.Version}}\n")
	if root.Flags().Lookup("version") == nil {
		root.Flags().BoolP("version", "V", false, "print the version and exit")
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "print the version and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version.For(program))
			return err
		},
	})
	wrapArgs(root)
}

// wrapArgs makes every command's argument check return UsageErrors.
func wrapArgs(c *cobra.Command) {
	check := c.Args
	if check == nil {
		check = cobra.ArbitraryArgs
		if c.HasSubCommands() {
			check = cobra.NoArgs
		}
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &UsageError{Err: err}
		}
		return nil
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// Aliases lets fs accept other names for its flags (Pisanix's camelCase names for the
// kebab-case ones): alias → name. Help lists only the names.
func Aliases(fs *pflag.FlagSet, aliases map[string]string) {
	prev := fs.GetNormalizeFunc()
	fs.SetNormalizeFunc(func(f *pflag.FlagSet, name string) pflag.NormalizedName {
		if to, ok := aliases[name]; ok {
			name = to
		}
		return prev(f, name)
	})
}

// SingleDashLong rewrites Go-style long flags ("-corePort=80", "-help") to pflag's
// ("--corePort=80") so that a program moved from the flag package to pflag keeps its command
// lines. Only names fs knows (after aliases) are rewritten, and "-h"/"-help"; an unknown
// "-name" is left for pflag to refuse. Arguments after "--" are left alone.
func SingleDashLong(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if name == "help" || fs.Lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
