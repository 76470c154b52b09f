package proxyconfig

import (
	"strings"
	"testing"
)

const securityTOML = minimalPisanix + `
[proxy.config.security_claim]
active_key = "k1"
assisted_key = "h1"
[[proxy.config.security_claim.key]]
id = "k1"
value = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
[[proxy.config.security_claim.key]]
id = "h1"
env = "PISA_HMAC_KEY"
[[proxy.config.security_claim.table]]
name = "users"
[[proxy.config.security_claim.table.column]]
name = "email"
cipher_column = "email_cipher"
assisted_column = "email_assisted"
plain_column = "email"
[[proxy.config.security_claim.masking]]
name = "mask-phone"
users = ["report"]
table = "users"
column = "phone"
mode = "keep"
keep_last = 4
`

func TestSecurityClaimParse(t *testing.T) {
	cfg := mustParse(t, securityTOML, TOML)
	sc := cfg.Proxy.Config[0].SecurityClaim
	if sc == nil || len(sc.Keys) != 2 || sc.Tables[0].Columns[0].AssistedColumn != "email_assisted" || sc.Masking[0].KeepLast != 4 {
		t.Fatalf("security claim decoded as %+v", sc)
	}
	if r := cfg.Redacted().Proxy.Config[0].SecurityClaim.Keys[0].Value; r != RedactedPassword {
		t.Fatalf("key value not redacted: %q", r)
	}
	if cfg.Proxy.Config[0].SecurityClaim.Keys[0].Value == RedactedPassword {
		t.Fatal("Redacted changed the original")
	}
}

func TestSecurityClaimValidate(t *testing.T) {
	cases := []struct {
		edit, want string
	}{
		{`active_key = "k1"`, ""},
		{`active_key = "k1"|active_key = "nope"`, `active_key: names no key: "nope"`},
		{`assisted_key = "h1"`, ""},
		{`cipher_column = "email_cipher"`, ""},
		{`assisted_key = "h1"|assisted_key = "k1"`, "must not be the active (encryption) key"},
		{`cipher_column = "email_cipher"|cipher_column = "email"`, `must differ from the logical name "email"`},
		{`plain_column = "email"|plain_column = "email_assisted"`, `column "email_assisted" is already used as the assisted column of email`},
		{`mode = "keep"|mode = "blur"`, `mode: must be "keep", "hash", "null" or "fixed", got "blur"`},
		{`keep_last = 4|fixed = "x"`, `fixed: applies to mode "fixed" only`},
		{`env = "PISA_HMAC_KEY"|env = "PISA_HMAC_KEY"` + "\nfile = \"/k\"", "needs exactly one of value, file or env"},
		{`value = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"|value = "abc"`, "not a 32-byte key"},
		{`name = "mask-phone"|name = ""`, "is required (the audit log names the rule)"},
	}
	for _, c := range cases {
		text := securityTOML
		if parts := strings.SplitN(c.edit, "|", 2); len(parts) == 2 {
			text = strings.Replace(text, parts[0], parts[1], 1)
		}
		_, err := Parse([]byte(text), TOML)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.edit, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want %q", c.edit, err, c.want)
		}
	}
	// With sharding on the same listener: accepted, unless a sharding
	// (or key generator) column is an encrypted column, which is named.
	shard := func(table, col string) string {
		return strings.Replace(securityTOML, "[proxy.config.security_claim]\n", `[[proxy.config.sharding]]
table_name = "`+table+`"
actual_datanodes = ["ds001"]
[proxy.config.sharding.table_strategy]
table_sharding_algorithm_name = "mod"
table_sharding_column = "`+col+`"
sharding_count = 2

[proxy.config.security_claim]
`, 1)
	}
	if _, err := Parse([]byte(shard("users", "id")), TOML); err != nil {
		t.Errorf("security claim with sharding by a plain column: %v", err)
	}
	for _, col := range []string{"email", "email_cipher", "EMAIL_ASSISTED"} {
		_, err := Parse([]byte(shard("users", col)), TOML)
		if err == nil || !strings.Contains(err.Error(), "encrypted column users.email is a sharding or key generator column") ||
			!strings.Contains(err.Error(), "security_claim.table[0].column[0]") {
			t.Errorf("sharding by %s: %v", col, err)
		}
	}
}
