#!/bin/bash
# gen_golden.sh writes testdata/strcmp.txt: for pairs of test strings, what
# MariaDB's STRCMP answers under each collation the merger implements.
# Usage: ./gen_golden.sh [mariadb client options]
set -euo pipefail
words=('' ' ' 'a' 'A' 'a ' 'a  ' 'a\t' 'a\n' 'á' 'Á' 'à' 'ä' 'Ä' 'å' 'Å' 'æ' 'Æ' 'b' 'B'
	's' 'ss' 'ß' 'sz' 'y' 'ü' 'Ü' 'ÿ' 'z' 'Z' 'ø' 'Ø' 'ö' 'ð' 'đ' 'þ' 'µ' 'μ' 'Μ' '€' 'ǅ' 'ǆ'
	'Ǆ' 'ﬀ' 'ŉ' 'ı' 'i' 'I' 'İ' '😀' '😁' '\xc2\xa0' 'x😀' '\t' '_' 'abc' 'ABC' 'abd' 'ab'
	'ab ' '1' '10' '9' 'Straße' 'STRASSE' '\x01' 'a\x01' 'Ａ' 'ａ' 'Ω' 'ω' 'ẞ' '\xef\xbf\xbd'
	'a\xcc\x81' 'a\xc2\xad' '\xc2\xad' 'ae' 'AE' 'oe' 'œ' 'Œ' 'ǳ' 'dz' 'ʼn' 'Ⅳ' 'iv' '①' '1 ' '中' '丁' '㐀' '가' '각' 'ｶ' 'カ' 'か'
	'\xe2\x80\x8b' 'a\xe2\x80\x8b' 'ﬁ' 'fi' 'ﬃ' 'ffi' 'Þ' 'th' 'ŋ' 'n' '\xea\xb0\x80\xea\xb0\x80' 'a b' 'ab\xc2\xa0')
vals=""
for w in "${words[@]}"; do
	h=$(printf '%b' "$w" | od -An -tx1 | tr -d ' \n')
	vals="$vals${vals:+,}(unhex('$h'))"
done
mariadb -N -B "$@" >testdata/strcmp.txt <<SQL
CREATE TEMPORARY TABLE w (s VARBINARY(40));
INSERT INTO w VALUES $vals;
CREATE TEMPORARY TABLE w4 (s VARCHAR(20) CHARACTER SET utf8mb4);
INSERT INTO w4 SELECT s FROM w;
CREATE TEMPORARY TABLE w3 (s VARCHAR(20) CHARACTER SET utf8mb3);
INSERT IGNORE INTO w3 SELECT s FROM w WHERE s NOT LIKE '%😀%' AND s NOT LIKE '%😁%';
CREATE TEMPORARY TABLE w1 (s VARCHAR(20) CHARACTER SET latin1);
INSERT IGNORE INTO w1 SELECT convert(s USING utf8mb4) FROM w;
SELECT 45, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb4_general_ci, b.s COLLATE utf8mb4_general_ci) FROM w4 a, w4 b;
SELECT 1069, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb4_general_nopad_ci, b.s COLLATE utf8mb4_general_nopad_ci) FROM w4 a, w4 b;
SELECT 46, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb4_bin, b.s COLLATE utf8mb4_bin) FROM w4 a, w4 b;
SELECT 1070, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb4_nopad_bin, b.s COLLATE utf8mb4_nopad_bin) FROM w4 a, w4 b;
SELECT 224, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb4_unicode_ci, b.s COLLATE utf8mb4_unicode_ci) FROM w4 a, w4 b;
SELECT 1248, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb4_unicode_nopad_ci, b.s COLLATE utf8mb4_unicode_nopad_ci) FROM w4 a, w4 b;
SELECT 192, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb3_unicode_ci, b.s COLLATE utf8mb3_unicode_ci) FROM w3 a, w3 b;
SELECT 1216, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb3_unicode_nopad_ci, b.s COLLATE utf8mb3_unicode_nopad_ci) FROM w3 a, w3 b;
SELECT 33, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb3_general_ci, b.s COLLATE utf8mb3_general_ci) FROM w3 a, w3 b;
SELECT 83, hex(a.s), hex(b.s), strcmp(a.s COLLATE utf8mb3_bin, b.s COLLATE utf8mb3_bin) FROM w3 a, w3 b;
SELECT 8, hex(a.s), hex(b.s), strcmp(a.s COLLATE latin1_swedish_ci, b.s COLLATE latin1_swedish_ci) FROM w1 a, w1 b;
SELECT 1032, hex(a.s), hex(b.s), strcmp(a.s COLLATE latin1_swedish_nopad_ci, b.s COLLATE latin1_swedish_nopad_ci) FROM w1 a, w1 b;
SELECT 47, hex(a.s), hex(b.s), strcmp(a.s COLLATE latin1_bin, b.s COLLATE latin1_bin) FROM w1 a, w1 b;
SELECT 63, hex(a.s), hex(b.s), strcmp(a.s, b.s) FROM w a, w b;
SQL
# Compact form: per collation "C id", its words "W hex", then "R" and one
# character per ordered pair of words (i, j): < = >.
awk -F '\t' '{ id = $1
	if (!(id in nw)) { ids[++nid] = id; nw[id] = 0 }
	if (!((id, $2) in wi)) { wi[id, $2] = ++nw[id]; word[id, nw[id]] = $2 }
	if (!((id, $3) in wi)) { wi[id, $3] = ++nw[id]; word[id, nw[id]] = $3 }
	res[id, wi[id, $2], wi[id, $3]] = ($4 < 0 ? "<" : $4 > 0 ? ">" : "=") }
END { for (k = 1; k <= nid; k++) { id = ids[k]; print "C " id
	for (i = 1; i <= nw[id]; i++) print "W " word[id, i]
	line = "R "; for (i = 1; i <= nw[id]; i++) for (j = 1; j <= nw[id]; j++) line = line res[id, i, j]
	print line } }' testdata/strcmp.txt >testdata/strcmp.tmp
mv testdata/strcmp.tmp testdata/strcmp.txt
rm -f testdata/strcmp.txt.gz

# testdata/double.txt: how MariaDB prints DOUBLE sums (width 23, decimals
# 31), for numbers of every magnitude and precision; input<TAB>output.
vals=$(awk 'BEGIN { srand(42); for (i = 0; i < 3000; i++) {
	p = 1 + int(rand() * 17); e = int(rand() * 70) - 35; if (i % 5 == 0) e = int(rand() * 600) - 300
	x = (rand() - 0.5) * 2; fmt = "%." p "g"; s = sprintf(fmt, x * 10 ^ e)
	if (s ~ /inf|nan/ || seen[s]++) continue
	printf "%s(\"%s\",%s)", (i ? "," : ""), s, s } }')
mariadb -N -B "$@" >testdata/double.txt <<SQL
CREATE TEMPORARY TABLE d (s VARCHAR(40), x DOUBLE);
INSERT INTO d VALUES $vals,("0",0),("1",1),("-1",-1),("0.1",0.1),("1e15",1e15),("1e16",1e16),("-1e15",-1e15),("123456789012345",123456789012345),("-123456789012345",-123456789012345),("1.7976931348623157e308",1.7976931348623157e308),("2.2250738585072014e-308",2.2250738585072014e-308),("5e-324",5e-324),("-5e-324",-5e-324),("1e-15",1e-15),("1e-16",1e-16),("-1e-15",-1e-15),("1.2345678901234567e-6",1.2345678901234567e-6),("-1.2345678901234567e-6",-1.2345678901234567e-6),("1.2345678901234567e-5",1.2345678901234567e-5),("-1.2345678901234567e-5",-1.2345678901234567e-5),("0.30000000000000004",0.30000000000000004);
SELECT s, sum(x), avg(x) FROM d GROUP BY s;
SQL

# testdata/agg_*.tsv: a differential check of the aggregates. agg_shardN
# are what shard N (rows with seq % 4 = N) answers to the pushed-down
# grouped query, agg_all what one server answers to the client's query;
# agg1_* the same without GROUP BY.
shardq="count(*), sum(x), min(x), max(x), avg(x), sum(i), avg(i), sum(f), avg(f), max(g), sum(x), count(x), sum(i), count(i), sum(f), count(f)"
allq="count(*), sum(x), min(x), max(x), avg(x), sum(i), avg(i), sum(f), avg(f), max(g)"
setup="CREATE TEMPORARY TABLE a (seq INT, g VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci,
  x DECIMAL(12,3), i INT, f DOUBLE);
INSERT INTO a SELECT seq, elt(1 + (seq * 7) % 10, 'a', 'A', 'b', 'B ', 'c', 'ß', 'ss', 'á', NULL, 'Z'),
  IF(seq % 13 = 0, NULL, ((CAST(seq AS SIGNED) * 37) % 2001 - 1000) * 0.123457),
  IF(seq % 17 = 0, NULL, (CAST(seq AS SIGNED) * 7919) % 100000 - 50000),
  IF(seq % 19 = 0 OR (seq * 7) % 10 = 9, NULL, ((CAST(seq AS SIGNED) * 31) % 400 - 200) / 4)
  FROM seq_1_to_2000;"
for n in 0 1 2 3; do
	mariadb -N -B "$@" -e "$setup SELECT g, $shardq FROM a WHERE seq % 4 = $n GROUP BY g ORDER BY g;" >testdata/agg_shard$n.tsv
	mariadb -N -B "$@" -e "$setup SELECT $shardq FROM a WHERE seq % 4 = $n AND g IS NOT NULL AND (g <> 'Z' OR $n = 2);" >testdata/agg1_shard$n.tsv
done
mariadb -N -B "$@" -e "$setup SELECT g, $allq FROM a GROUP BY g ORDER BY g;" >testdata/agg_all.tsv
mariadb -N -B "$@" -e "$setup SELECT $allq FROM a WHERE g IS NOT NULL AND (g <> 'Z' OR seq % 4 = 2);" >testdata/agg1_all.tsv
