package crypt

import (
	"os"

	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func newTestParser() *sqlparse.Parser { return sqlparse.New(sqlparse.Options{}) }
