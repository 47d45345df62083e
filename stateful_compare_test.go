package zflow_test

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/zflowdev/zflow/internal/duckdbtest"
)

// Comparing zflow's answer with DuckDB's, in DuckDB. Both sides go into
// temporary tables of one session — the SQL's answer, and zflow's output
// Parquet as read_parquet reads it — sorted by every column when the entry
// is unordered, in output order when it is ordered; rows are then paired
// by position (rowid) and compared cell by cell by a query that returns
// only the first differing rows and their count. Shipping every row to Go
// as text would cost more than running the operators. The columns and
// their types come first, from a LIMIT 0 of each side.

// diffTypeEquiv are the pairs of DuckDB types (the SQL's, then zflow's as
// DuckDB reads its Parquet) accepted as the same, each with the reason;
// their values are compared as numbers.
var diffTypeEquiv = map[[2]string]string{
	// DuckDB sums integers into a HUGEINT (int128); zflow sums into int64
	// and fails the run on overflow rather than wrap (issue 14), so the
	// values are equal whenever zflow answers.
	{"HUGEINT", "BIGINT"}: "sum of integers: DuckDB int128, zflow int64 that fails on overflow",
	// DuckDB widens the sum of a DECIMAL(p,s) to DECIMAL(38,s).
	{"DECIMAL(38,2)", "DECIMAL(18,2)"}: "sum of a decimal: DuckDB DECIMAL(38,s), zflow DECIMAL(18,s)",
	{"DECIMAL(38,2)", "DOUBLE"}:        "sum of a decimal: DuckDB DECIMAL(38,s), zflow a double",
}

// diffMaxRowsShown bounds the differing rows a mismatch prints.
const diffMaxRowsShown = 3

// diffCol is one of zflow's columns and the SQL's column(s) it is
// compared with.
type diffCol struct {
	name           string
	zType          string
	sql            string  // the SQL's column; for a within, its low column
	sqlHi          string  // a within's high column, "" otherwise
	num            bool    // compare as numbers within bound
	bound          float64 // relative tolerance (or approx error bound)
	sqlType, hType string
}

// mapColumns pairs zflow's columns (z, a LIMIT 0 of its output) with the
// SQL's (d), checking names, order and types.
func mapColumns(c *diffCase, z, d duckdbtest.Result) ([]diffCol, []string) {
	dIdx := map[string]int{}
	for i, n := range d.Columns {
		dIdx[n] = i
	}
	var problems []string
	var cols []diffCol
	used := map[int]bool{}
	prev := -1
	for i, n := range z.Columns {
		col := diffCol{name: n, zType: z.Types[i], bound: max(c.tol, c.approx[n])}
		at := -1
		if w, ok := c.withinOf(n); ok {
			lo, okLo := dIdx[w.lo]
			hi, okHi := dIdx[w.hi]
			if !okLo || !okHi {
				problems = append(problems, fmt.Sprintf("within %s: the SQL has no column %s or %s", n, w.lo, w.hi))
				continue
			}
			col.sql, col.sqlHi, col.num = w.lo, w.hi, true
			used[lo], used[hi], at = true, true, lo
		} else if j, ok := dIdx[n]; ok {
			col.sql, col.sqlType = n, d.Types[j]
			used[j], at = true, j
			if col.zType != col.sqlType {
				if _, ok := diffTypeEquiv[[2]string{col.sqlType, col.zType}]; !ok {
					problems = append(problems, fmt.Sprintf("column %s: zflow's type %s, DuckDB's %s", n, col.zType, col.sqlType))
				}
			}
			col.num = floatType(col.zType) || floatType(col.sqlType) || col.zType != col.sqlType || c.approx[n] > 0
		} else {
			problems = append(problems, fmt.Sprintf("column %s: zflow has it, the SQL does not", n))
			continue
		}
		if at < prev {
			problems = append(problems, fmt.Sprintf("column %s: comes later in zflow's answer than in the SQL's", n))
		}
		prev = at
		cols = append(cols, col)
	}
	for j, n := range d.Columns {
		if !used[j] {
			problems = append(problems, fmt.Sprintf("column %s: the SQL has it, zflow does not", n))
		}
	}
	if len(problems) > 0 {
		problems = append(problems, fmt.Sprintf("zflow's columns: %s; the SQL's: %s",
			strings.Join(z.Columns, ", "), strings.Join(d.Columns, ", ")))
	}
	return cols, problems
}

func (c *diffCase) withinOf(col string) (diffWithin, bool) {
	for _, w := range c.within {
		if w.col == col {
			return w, true
		}
	}
	return diffWithin{}, false
}

// floatType says whether DuckDB type t holds inexact numbers.
func floatType(t string) bool { return t == "DOUBLE" || t == "FLOAT" }

// ident quotes a column name for DuckDB.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// sameSQL is the condition under which zflow's cell z.col equals the
// SQL's: NULL only with NULL; equal (DuckDB's equality: NaN equals NaN);
// or, for numbers, finite and within the relative bound, the magnitude
// taken as at least 1 so that values near 0 compare absolutely; for a
// within, between the SQL's two columns. Never NULL.
func (col diffCol) sameSQL() string {
	zc := "z." + ident(col.name)
	ac := "a." + ident(col.sql)
	if col.sqlHi != "" {
		hc := "a." + ident(col.sqlHi)
		return fmt.Sprintf("coalesce((%[1]s IS NULL AND %[2]s IS NULL AND %[3]s IS NULL) OR (CAST(%[1]s AS DOUBLE) BETWEEN CAST(%[2]s AS DOUBLE) AND CAST(%[3]s AS DOUBLE)), false)", zc, ac, hc)
	}
	if !col.num {
		return fmt.Sprintf("(%s IS NOT DISTINCT FROM %s)", zc, ac)
	}
	zd, ad := "CAST("+zc+" AS DOUBLE)", "CAST("+ac+" AS DOUBLE)"
	return fmt.Sprintf("coalesce((%[1]s IS NOT DISTINCT FROM %[2]s) OR (isfinite(%[3]s) AND isfinite(%[4]s) AND abs(%[3]s - %[4]s) <= %[5]s * greatest(abs(%[3]s), abs(%[4]s), 1)), false)",
		zc, ac, zd, ad, strconv.FormatFloat(col.bound, 'g', -1, 64))
}

// compareSQL is the query comparing temporary tables a (the SQL's answer)
// and z (zflow's), paired by rowid: the first differing rows, each with the
// count of all differing rows and of both sides' rows, then per column
// whether it matches and both values.
func compareSQL(cols []diffCol, a, z string) string {
	var sel, same []string
	sel = append(sel, "count(*) OVER () AS __bad", fmt.Sprintf("(SELECT count(*) FROM %s) AS __na", a),
		fmt.Sprintf("(SELECT count(*) FROM %s) AS __nz", z), "coalesce(a.__r, z.__r) AS __r")
	for i, col := range cols {
		cond := col.sameSQL()
		same = append(same, cond)
		sel = append(sel, fmt.Sprintf("%s AS __ok%d", cond, i), fmt.Sprintf("z.%s AS __z%d", ident(col.name), i),
			fmt.Sprintf("a.%s AS __a%d", ident(col.sql), i))
		if col.sqlHi != "" {
			sel = append(sel, fmt.Sprintf("a.%s AS __h%d", ident(col.sqlHi), i))
		}
	}
	if len(same) == 0 {
		same = []string{"true"}
	}
	return fmt.Sprintf("SELECT %s\nFROM (SELECT rowid AS __r, * FROM %s) a FULL JOIN (SELECT rowid AS __r, * FROM %s) z ON a.__r = z.__r\nWHERE a.__r IS NULL OR z.__r IS NULL OR NOT (%s)\nORDER BY 4 LIMIT %d",
		strings.Join(sel, ", "), a, z, strings.Join(same, " AND "), diffMaxRowsShown)
}

// readCompare turns compareSQL's answer into problems, none when it is
// empty.
func readCompare(cols []diffCol, r duckdbtest.Result) []string {
	if len(r.Rows) == 0 {
		return nil
	}
	var problems []string
	first := r.Rows[0]
	if first[1] != first[2] {
		problems = append(problems, fmt.Sprintf("zflow gave %v rows, DuckDB %v", first[2], first[1]))
	}
	at := map[string]int{}
	for i, n := range r.Columns {
		at[n] = i
	}
	names := make([]string, len(cols))
	for i, col := range cols {
		names[i] = col.name
	}
	problems = append(problems, "columns: "+strings.Join(names, " | "))
	for _, row := range r.Rows {
		var bad, zs, ds []string
		for i, col := range cols {
			if row[at[fmt.Sprintf("__ok%d", i)]] != "true" {
				bad = append(bad, col.name)
			}
			zs = append(zs, cellText(row[at[fmt.Sprintf("__z%d", i)]]))
			dv := cellText(row[at[fmt.Sprintf("__a%d", i)]])
			if col.sqlHi != "" {
				dv = "[" + dv + ", " + cellText(row[at[fmt.Sprintf("__h%d", i)]]) + "]"
			}
			ds = append(ds, dv)
		}
		problems = append(problems, fmt.Sprintf("row %v differs in %s:\n\t\tzflow  %s\n\t\tduckdb %s",
			row[3], strings.Join(bad, ", "), strings.Join(zs, " | "), strings.Join(ds, " | ")))
	}
	if n, _ := strconv.Atoi(fmt.Sprint(first[0])); n > len(r.Rows) {
		problems = append(problems, fmt.Sprintf("... %d rows differ in all", n))
	}
	return problems
}

func cellText(v any) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprint(v)
}
