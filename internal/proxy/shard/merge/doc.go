// Package merge combines the result sets of several shards into the one
// result set a single MariaDB server would have produced, while the rows
// stream in. The plan is a shard.Merge (package shard); the rows are the
// shards' row payloads, text or binary protocol; the merged rows are
// payloads in the same protocol with only the client's columns.
//
// Pipeline, in SQL's order:
//
//	k-way merge by OrderBy (a heap over the sources; ties keep shard order)
//	→ GROUP BY: adjacent rows with equal group keys merge (Aggregates);
//	  without GroupBy but with Aggregates, every row merges into one
//	→ HAVING (every Cond must hold; NULL never matches)
//	→ Resort (buffered, bounded by MemoryLimit; top-N when there is a LIMIT)
//	→ DISTINCT (drops a row equal to the previous one over the visible columns)
//	→ OFFSET, LIMIT → derived columns stripped.
//
// Comparisons follow the column type: signed and unsigned integers,
// DECIMAL as exact decimal strings, FLOAT/DOUBLE, DATE/DATETIME/TIMESTAMP
// and TIME (text and binary forms decoded), strings by collation: binary
// (63), every *_bin and *_nopad_bin collation of the single-byte character
// sets and of utf8mb3/utf8mb4, latin1_swedish_ci (8) and its nopad twin,
// utf8mb3_general_ci (33), utf8mb4_general_ci (45), utf8mb3_unicode_ci
// (192), utf8mb4_unicode_ci (224) and their nopad twins, with the server's
// own weights (collation_tables.go and uca400_weights.txt are generated
// from MariaDB's WEIGHT_STRING by gen_collations.sh; testdata/strcmp.txt
// holds MariaDB's STRCMP of 142,000 string pairs under 14 collations and
// the tests check every one; TestCollationsLive compares random strings
// with a running server). Other collations (the uca1400 family of MariaDB
// 11, language-specific ones...) and ENUM/SET columns (sorted by index,
// which the rows do not carry) are refused with ERR 1235 when they would
// be compared.
//
// A caveat the planner must know: in a result set MariaDB reports the
// default collation of character_set_results (45 for utf8mb4), not the
// column's, unless character_set_results is NULL or binary; it sets the
// BINARY flag for *_bin collations, which the merger honours. A column
// whose real collation differs (utf8mb4_unicode_ci, a latin1 column sent
// as utf8mb4) would be compared with the reported one. A caller that knows
// the real collation (from the schema) can overwrite Column.Collation
// before calling New; unknown ids are then refused.
//
// Aggregates: COUNT sums the shards' counts; SUM adds exactly (integers
// and DECIMAL in decimal arithmetic with the column's decimals, on an
// int64 until it overflows, then math/big) or as float64 for FLOAT/DOUBLE,
// printed as MariaDB prints a DOUBLE (shortest digits, plain notation for
// exponents -15 < e < 15, else d.dddde±N; fixed decimals when the column
// has them; testdata/double.txt holds 3000 numbers MariaDB printed); MIN
// and MAX use the ORDER BY comparison; AVG is SUM(SumColumn)/SUM(CountColumn)
// rounded half away from zero to the AVG column's decimals (DECIMAL) or
// divided in float64 (DOUBLE). AVG's derived SUM and COUNT columns merge as
// SUM and COUNT even when the plan does not list them. SUM/MIN/MAX/AVG are
// NULL when every input is NULL. A floating-point SUM adds the shards'
// partial sums, so its last digit may differ from one server's sum of the
// rows in another order. Plain columns of a grouped row come from the
// group's first row; without GROUP BY, from the first row whose plain
// columns are not all NULL (a shard without matching rows answers NULLs).
//
// Performance: ORDER BY and LIMIT merges allocate nothing per row once
// running (TestZeroAllocsPerRow); grouping reuses its buffers. Memory is
// bounded by the sources' current rows and one group, except for Resort,
// which buffers up to MemoryLimit (default 64 MiB) and then fails with
// ERR 1038 (HY001) "Out of sort memory ...".
//
// The Merger stops reading its sources as soon as it has sent LIMIT rows
// or returned an error: the caller drains or closes what they still hold.
package merge
