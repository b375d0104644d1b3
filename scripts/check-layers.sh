#!/usr/bin/env bash
# Checks the layers of Sources/Torus, so that they hold by more than convention:
#
#   Support < Base < Buffers < Engine < Sockets < Streams < Server      (each may use only those before it)
#
# - Only Engine/ (the engines: io_uring through liburing, epoll) and Support/ (ThreadSanitizer
#   annotations) import CURing; no other target's sources do either (the tests may).
# - No file names a type declared at the top level of a higher layer, outside comments.
#
#   scripts/check-layers.sh        exits non-zero and lists every breach
#
# No build needed; runs in a second.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

exec python3 - "$@" <<'PY'
import pathlib, re, sys

root = pathlib.Path("Sources/Torus")
layers = ["Support", "Base", "Buffers", "Engine", "Sockets", "Streams", "Server"]
may_import_curing = {"Engine", "Support"}
problems = []

def files(layer):
    return sorted((root / layer).rglob("*.swift"))

def code_of(path):
    """The file's lines with comments and string literals blanked out."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    lines = []
    for line in text.split("\n"):
        line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
        line = line.split("//", 1)[0]
        lines.append(line)
    return lines

known = set(p.name for p in root.iterdir() if p.is_dir())
unknown = known - set(layers) - {"Torus.docc"}
if unknown:
    problems.append(f"Sources/Torus has folders in no layer: {', '.join(sorted(unknown))} (add them to scripts/check-layers.sh)")
loose = [p.name for p in root.glob("*.swift")]
if loose:
    problems.append(f"Swift files outside every layer: {', '.join(loose)}")

declaration = re.compile(r"^(?:public |package |internal |fileprivate |private )?(?:final )?(?:struct|class|enum|protocol|actor|typealias)\s+([A-Z]\w*)")
declared = {layer: set() for layer in layers}
for layer in layers:
    for path in files(layer):
        for line in code_of(path):
            match = declaration.match(line)
            if match:
                declared[layer].add(match.group(1))

for index, layer in enumerate(layers):
    higher = {name: upper for upper in layers[index + 1:] for name in declared[upper]}
    for path in files(layer):
        for number, line in enumerate(code_of(path), 1):
            if re.match(r"\s*(public |internal |@preconcurrency )?import\s+CURing\b", line) and layer not in may_import_curing:
                problems.append(f"{path}:{number}: imports CURing; only Engine/ and Support/ may")
            for word in set(re.findall(r"\b[A-Z]\w*\b", line)):
                if word in higher:
                    problems.append(f"{path}:{number}: {layer}/ uses {word}, declared in {higher[word]}/ above it")

for path in sorted(pathlib.Path("Sources").rglob("*.swift")) + sorted(pathlib.Path("Examples").rglob("*.swift")):
    if path.is_relative_to(root):
        continue
    for number, line in enumerate(code_of(path), 1):
        if re.match(r"\s*(public |internal |@preconcurrency )?import\s+CURing\b", line):
            problems.append(f"{path}:{number}: imports CURing, which only Torus's Engine/ may")

if problems:
    print("check-layers: FAILED:", file=sys.stderr)
    for problem in problems:
        print("  " + problem, file=sys.stderr)
    sys.exit(1)
counts = ", ".join(f"{layer} {len(files(layer))}" for layer in layers)
print(f"check-layers: OK ({counts} files): CURing only in Engine/ and Support/, no layer uses one above it")
PY
