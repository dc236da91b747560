#!/usr/bin/env bash
# The repository stands alone: every relative link and every file a comment or
# a page names resolves inside it, and nothing points outside the tree; and the
# CLI reaches databases and YAML only through the library.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1

# No reference to a folder beside the repository.
CHECKS=$((CHECKS + 1))
hits=$(git ls-files -z 2>/dev/null | xargs -0 grep -nE '\.\./shared/|shared/(style|reference)/' -- 2>/dev/null |
	grep -v '^tests/cli/test_docs.sh:')
[ -z "$hits" ] || { FAILS=$((FAILS + 1)); echo "FAIL: references outside the repository:" >&2; echo "$hits" >&2; }

# Every relative Markdown link in README.md and docs/ resolves.
for page in README.md docs/*.md docs/*/*.md; do
	[ -f "$page" ] || continue
	dir=$(dirname "$page")
	while IFS= read -r target; do
		target=${target%%#*}
		[ -n "$target" ] || continue
		CHECKS=$((CHECKS + 1))
		[ -e "$dir/$target" ] || { FAILS=$((FAILS + 1)); echo "FAIL: $page links to '$target', which does not exist" >&2; }
	done < <(grep -oE '\]\([^)#:]+(#[^)]*)?\)' "$page" | sed -E 's/^\]\(//; s/\)$//')
done

# Every page a source comment names (docs/..., or a bare STYLE.md / DESIGN.md,
# which the repository does not have) exists.
while IFS= read -r ref; do
	CHECKS=$((CHECKS + 1))
	case $ref in
	docs/*) [ -e "$ref" ] ;;
	*) false ;;
	esac || { FAILS=$((FAILS + 1)); echo "FAIL: a source file names '$ref', which is not a file of the repository" >&2; }
done < <(git ls-files -z -- src include tests bench fuzz scripts meson.build Makefile ':!tests/cli/test_docs.sh' 2>/dev/null |
	xargs -0 grep -ohE 'docs/[A-Za-z0-9_/.-]+\.md|\b(STYLE|DESIGN)\.md' -- 2>/dev/null | sort -u)

# The CLI is a client of the library: no database or YAML library is called from src/cli/.
CHECKS=$((CHECKS + 1))
hits=$(grep -nE '#include <(libpq-fe|sqlite3|libfyaml|pg_query)\.h>|\b(PQ[a-z]+|sqlite3_[a-z_]+|fy_[a-z_]+)\(' src/cli/*.c src/cli/*.h)
[ -z "$hits" ] || { FAILS=$((FAILS + 1)); echo "FAIL: src/cli/ calls a library the CLI should reach through libdeployclaw:" >&2; echo "$hits" >&2; }

finish
