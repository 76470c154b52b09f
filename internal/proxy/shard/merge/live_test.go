package merge

import (
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestCollationsLive compares random strings with a running MariaDB's
// STRCMP under each implemented utf8 and latin1 collation. It needs the
// mariadb client and MERGE_LIVE_MARIADB set to its options (e.g.
// "-uroot test"); it creates only temporary tables.
func TestCollationsLive(t *testing.T) {
	opts := os.Getenv("MERGE_LIVE_MARIADB")
	if opts == "" {
		t.Skip("MERGE_LIVE_MARIADB not set")
	}
	alphabet := []string{"a", "A", "b", "z", " ", "  ", "\t", "\x01", "á", "Á", "ä", "ß", "ss", "æ", "ø", "å",
		"\u0301", "\u00ad", "\u200b", "ǅ", "ﬁ", "中", "㐀", "가", "😀", "𝔸", "\uFFFD", "Ω", "ω", "ı", "İ", "0", "9",
		"\u00a0", "€", "ŉ", "ǳ", "ｶ", "\u3099", "\U00020000"}
	rng := rand.New(rand.NewSource(int64(os.Getpid())))
	word := func() string {
		var b strings.Builder
		for n := rng.Intn(5); n > 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		return b.String()
	}
	var vals []string
	for i := 0; i < 3000; i++ {
		vals = append(vals, fmt.Sprintf("(unhex('%x'), unhex('%x'))", word(), word()))
	}
	colls := []struct {
		id      uint16
		name    string
		charset string
	}{
		{45, "utf8mb4_general_ci", "utf8mb4"}, {1069, "utf8mb4_general_nopad_ci", "utf8mb4"},
		{224, "utf8mb4_unicode_ci", "utf8mb4"}, {1248, "utf8mb4_unicode_nopad_ci", "utf8mb4"},
		{46, "utf8mb4_bin", "utf8mb4"}, {1070, "utf8mb4_nopad_bin", "utf8mb4"},
		{33, "utf8mb3_general_ci", "utf8mb3"}, {192, "utf8mb3_unicode_ci", "utf8mb3"},
		{8, "latin1_swedish_ci", "latin1"}, {47, "latin1_bin", "latin1"},
	}
	sql := "CREATE TEMPORARY TABLE p (a VARBINARY(64), b VARBINARY(64)); INSERT INTO p VALUES " + strings.Join(vals, ",") + ";"
	for _, c := range colls {
		sql += fmt.Sprintf("SELECT %d, hex(x), hex(y), strcmp(x COLLATE %s, y COLLATE %s) FROM "+
			"(SELECT convert(convert(a USING utf8mb4) USING %s) x, convert(convert(b USING utf8mb4) USING %s) y FROM p) q;",
			c.id, c.name, c.name, c.charset, c.charset)
	}
	cmd := exec.Command("mariadb", append(strings.Fields(opts), "-N", "-B")...)
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	n, bad := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		id, _ := strconv.Atoi(f[0])
		a, _ := hex.DecodeString(f[1])
		b, _ := hex.DecodeString(f[2])
		want, _ := strconv.Atoi(f[3])
		n++
		if got := collationByID(uint16(id)).compare(a, b); got != want {
			bad++
			if bad < 20 {
				t.Errorf("%d: compare(%q, %q) = %d, MariaDB %d", id, a, b, got, want)
			}
		}
	}
	t.Logf("%d pairs, %d wrong", n, bad)
}
