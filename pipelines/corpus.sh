#!/usr/bin/env bash
# The default corpus in data/corpus/: real documentation from permissively licensed packages,
# half general technical writing and half mathematics, a small stand-in for the paper's 50/50
# mix of NaturalReasoning and Nemotron-CC-Math:
#
#   python-docs/   the Python tutorial, language reference, FAQ and glossary (reST sources
#                  of Debian's python3.X-doc; PSF-2.0)
#   mpmath-docs/   mpmath's documentation of its functions (the docstrings of Debian's
#                  python3-mpmath, one document per function; BSD-3-Clause)
#   _SOURCES.md    package, version, origin and licence of each part; _licenses/ holds the
#                  packages' copyright files. spice-chunk does not read `_` names.
#
# Packages are fetched with `apt-get download` (no root needed: a private package index
# under data/cache/ is used when the system has none) and unpacked with `dpkg-deb -x`.
# Without apt (or with SPICE_CORPUS_SOURCE=pypi) the same parts come from PyPI and the local
# Python: the mpmath sdist, and the language reference topics every Python ships
# (pydoc_data). Idempotent: nothing to do once data/corpus/.complete exists.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SPICE_ROOT"

out=data/corpus
cache="$SPICE_ROOT/data/cache/corpus"
source_kind="${SPICE_CORPUS_SOURCE:-auto}"
mpmath_pypi_version=1.3.0

if [ -f "$out/.complete" ]; then
    echo "corpus: $out is complete" >&2
    exit 0
fi
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
    echo "corpus: $out exists but was not made by this script (no $out/.complete): move it" >&2
    echo "        away, or create $out/.complete to keep it as the default corpus" >&2
    exit 1
fi
py="$SPICE_PYTHON"
[ -x "$py" ] || py=python3
mkdir -p "$cache/deb" "$cache/pypi"
t0=$SECONDS

# ---- fetch: sets python_src (empty: use pydoc_data), mpmath_src, labels and licence files --
apt_opts=(-q -o "APT::Sandbox::User=$(id -un)")
private_index() {
    mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial"
    apt_opts+=(-o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache" -o Debug::NoLocking=1)
    apt-get "${apt_opts[@]}" update >&2
}
python_doc_package() {
    apt-cache "${apt_opts[@]}" pkgnames python3. 2>/dev/null | grep -E '^python3\.[0-9]+-doc$' | sort -V | tail -1
}
deb_of() { ls "$cache/deb/$1"_*.deb 2>/dev/null | tail -1; }
fetch_apt() {
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || return 1
    local pydoc pkg wanted=()
    pydoc="$(python_doc_package)"
    if [ -z "$pydoc" ]; then
        private_index || return 1
        pydoc="$(python_doc_package)"
        [ -n "$pydoc" ] || return 1
    fi
    for pkg in "$pydoc" python3-mpmath; do
        [ -n "$(deb_of "$pkg")" ] || wanted+=("$pkg")
    done
    if [ ${#wanted[@]} -gt 0 ] && ! (cd "$cache/deb" && apt-get "${apt_opts[@]}" download "${wanted[@]}" >&2); then
        # The system index may be stale (versions gone from the mirror): use a fresh one.
        private_index || return 1
        (cd "$cache/deb" && apt-get "${apt_opts[@]}" download "${wanted[@]}" >&2) || return 1
    fi
    rm -rf "$cache/x" && mkdir -p "$cache/x"
    for pkg in "$pydoc" python3-mpmath; do
        dpkg-deb -x "$(deb_of "$pkg")" "$cache/x/$pkg" || return 1
    done
    python_src="$(find "$cache/x/$pydoc" -type d -name _sources | head -1)"
    mpmath_src="$(find "$cache/x/python3-mpmath" -type d -name mpmath -path '*-packages/*' | head -1)"
    python_label="Debian package $pydoc $(dpkg-deb -f "$(deb_of "$pydoc")" Version)"
    mpmath_label="Debian package python3-mpmath $(dpkg-deb -f "$(deb_of python3-mpmath)" Version)"
    python_copyright="$(find "$cache/x/$pydoc/usr/share/doc" -name copyright | head -1)"
    mpmath_copyright="$cache/x/python3-mpmath/usr/share/doc/python3-mpmath/copyright"
    [ -d "$python_src" ] && [ -d "$mpmath_src" ] && [ -f "$python_copyright" ] && [ -f "$mpmath_copyright" ]
}
fetch_pypi() {
    local sdist="$cache/pypi/mpmath-$mpmath_pypi_version.tar.gz"
    if [ ! -f "$sdist" ]; then
        "$py" -m pip download --quiet --no-binary :all: --no-deps --dest "$cache/pypi" \
            "mpmath==$mpmath_pypi_version" >&2 || return 1
    fi
    rm -rf "$cache/x" && mkdir -p "$cache/x"
    tar -xzf "$sdist" -C "$cache/x" || return 1
    mpmath_src="$cache/x/mpmath-$mpmath_pypi_version/mpmath"
    mpmath_copyright="$cache/x/mpmath-$mpmath_pypi_version/LICENSE"
    mpmath_label="PyPI sdist mpmath $mpmath_pypi_version"
    python_src=""
    python_label="pydoc_data topics of Python $("$py" -c 'import platform; print(platform.python_version())')"
    # The licence file of this Python: python.org layout, else Debian's.
    python_copyright="$("$py" -c '
import os, sys
v = "%d.%d" % sys.version_info[:2]
for p in (os.path.join(sys.base_prefix, "lib", "python" + v, "LICENSE.txt"), "/usr/share/doc/python%s/copyright" % v):
    if os.path.isfile(p):
        print(p)
        break
')"
    [ -d "$mpmath_src" ] && [ -f "$mpmath_copyright" ]
}

case "$source_kind" in
    auto)
        if ! fetch_apt; then
            echo "corpus: Debian packages unavailable, using PyPI and the local Python" >&2
            fetch_pypi || { echo "corpus: fetching mpmath from PyPI failed" >&2; exit 1; }
        fi
        ;;
    apt) fetch_apt || { echo "corpus: fetching the Debian packages failed" >&2; exit 1; } ;;
    pypi) fetch_pypi || { echo "corpus: fetching mpmath from PyPI failed" >&2; exit 1; } ;;
    *) echo "corpus: SPICE_CORPUS_SOURCE must be auto, apt or pypi (got $source_kind)" >&2; exit 1 ;;
esac
t_fetch=$((SECONDS - t0))

# Licences as the packages state them; a change needs a human look.
if [ -n "$python_copyright" ] && ! grep -q "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" "$python_copyright"; then
    echo "corpus: $python_copyright does not state the PSF licence; review it" >&2
    exit 1
fi
if ! grep -qi "Redistribution and use in source and binary forms" "$mpmath_copyright"; then
    echo "corpus: $mpmath_copyright does not state a BSD licence; review it" >&2
    exit 1
fi

# ---- extract -----------------------------------------------------------------------------
tmp="$cache/staging"
rm -rf "$tmp"
mkdir -p "$tmp/_licenses"
"$py" - "$tmp" "$python_src" "$mpmath_src" <<'PY'
"""Write the corpus documents: selected Python doc pages and mpmath's function docs."""
import ast, inspect, pathlib, sys

out, python_src, mpmath_src = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
MIN_CHARS = 400  # shorter docstrings are one-liners: too little to ground a question


def write(rel, text):
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.strip() + "\n", encoding="utf-8")


# General technical writing: the tutorial, the language reference, the FAQ and the glossary,
# about as many tokens as the math half (the library reference would dwarf it; index pages
# are only tables of contents).
if python_src:
    root = pathlib.Path(python_src)
    pages = [p for d in ("tutorial", "reference", "faq") for p in sorted(root.glob(f"{d}/*.rst.txt"))]
    for page in pages + [root / "glossary.rst.txt"]:
        if page.name != "index.rst.txt":
            rel = page.relative_to(root).as_posix()[: -len(".rst.txt")]
            write(f"python-docs/{rel}.txt", page.read_text(encoding="utf-8"))
else:
    # No Debian docs: the language reference topics of the running Python (what help() shows).
    import pydoc_data.topics

    for name, text in sorted(pydoc_data.topics.topics.items()):
        if len(text) >= MIN_CHARS:
            write(f"python-docs/topics/{name}.txt", text)

# Mathematics: every documented mpmath function, class and method, titled by its name.
seen = set()
for src in sorted(mpmath_src.rglob("*.py")):
    rel = src.relative_to(mpmath_src)
    if "tests" in rel.parts:
        continue
    module = ".".join(rel.with_suffix("").parts)
    tree = ast.parse(src.read_text(encoding="utf-8"))
    docs = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                docs.append((f"{module}.{prefix}{child.name}", ast.get_docstring(child)))
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    if module == "function_docs":
        # Docstrings attached to the functions at import time: `zeta = r"""..."""`.
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                docs.append((node.targets[0].id, inspect.cleandoc(node.value.value)))
    for name, doc in docs:
        if doc and len(doc) >= MIN_CHARS and doc not in seen:
            seen.add(doc)
            title = f"mpmath.{name}"
            write(f"mpmath-docs/{name}.txt", f"{title}\n{'=' * len(title)}\n\n{doc}")
PY
t_extract=$((SECONDS - t0 - t_fetch))

# ---- record where it came from -----------------------------------------------------------
if [ -n "$python_copyright" ]; then
    cp "$python_copyright" "$tmp/_licenses/python-docs.copyright"
fi
cp "$mpmath_copyright" "$tmp/_licenses/mpmath-docs.copyright"
summary() { echo "$(find "$1" -type f | wc -l) files, $(($(find "$1" -type f -exec cat {} + | wc -c) / 1000)) kB"; }
if [ -n "$python_src" ]; then python_what="tutorial, language reference, FAQ, glossary"; else python_what="language reference topics"; fi
cat >"$tmp/_SOURCES.md" <<EOF
# Default corpus

Made by pipelines/corpus.sh on $(date -u +%Y-%m-%d). Names starting with \`_\` are not read by
spice-chunk.

| folder | content | from | licence |
| --- | --- | --- | --- |
| python-docs/ | Python documentation: $python_what ($(summary "$tmp/python-docs")) | $python_label | PSF-2.0 (code examples also 0BSD) |
| mpmath-docs/ | mpmath function documentation, one docstring per file ($(summary "$tmp/mpmath-docs")) | $mpmath_label | BSD-3-Clause |

The licence texts are in _licenses/ (the packages' own copyright files).
EOF
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
echo "corpus: python-docs from $python_label ($(summary "$out/python-docs")), mpmath-docs from" \
    "$mpmath_label ($(summary "$out/mpmath-docs")); fetch ${t_fetch} s, extract ${t_extract} s" >&2
