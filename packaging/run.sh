#!/usr/bin/env bash
# Set up whatever is missing, then run LungLens or its tests.
#
#   bash packaging/run.sh app [PATH] [--labels FILE]   # the app (the built-in demo without PATH)
#   bash packaging/run.sh test [PYTEST ARGS]           # the test suite
#   bash packaging/run.sh engine COMMAND ...           # the command line (python -m engine)
#
# The first run creates .venv in the project root and installs the project into it: the
# CPU build of PyTorch (packaging/constraints-cpu.txt) unless `nvidia-smi` finds an NVIDIA
# GPU, in which case pip picks the CUDA build. Later runs reinstall only when pyproject.toml
# or the constraints changed. Set LUNGLENS_PYTHON to choose the interpreter (3.10 or newer).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
MODE="${1:-}"
[ $# -gt 0 ] && shift

say() { printf 'lunglens: %s\n' "$*" >&2; }

case "$MODE" in
  app|test|engine) ;;
  *) echo "usage: bash packaging/run.sh app [PATH] | test [PYTEST ARGS] | engine COMMAND ..." >&2; exit 2 ;;
esac

PYTHON="${LUNGLENS_PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  say "$PYTHON is missing or older than 3.10; install Python 3.10+ (Debian: apt-get install python3 python3-venv) or set LUNGLENS_PYTHON"
  exit 1
fi

# What decides the installed set: the package metadata, the constraints and the build kind.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  KIND=cuda
  CONSTRAINTS=()
else
  KIND=cpu
  CONSTRAINTS=(-c "$ROOT/packaging/constraints-cpu.txt")
fi
# The app needs the project; the tests also need the "test" extra (pytest, pytest-qt,
# import-linter, and Ray + pyarrow for the batch tests, about 400 MB), so it is installed only
# for them. An install made for the tests also serves the app.
EXTRAS=""
[ "$MODE" = test ] && EXTRAS="[test]"
STAMP="$VENV/.lunglens-install"
HASH="$(cat "$ROOT/pyproject.toml" "$ROOT/packaging/constraints-cpu.txt" | cksum | cut -d' ' -f1)"
WANT="$KIND $HASH ${EXTRAS:-[]}"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV" || { say "python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv"; exit 1; }
fi
HAVE="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$HAVE" != "$WANT" ] && [ "$HAVE" != "$KIND $HASH [test]" ]; then
  if [ "$KIND" = cuda ]; then
    say "installing LungLens$EXTRAS with the CUDA build of PyTorch (an NVIDIA GPU was found; several GB)"
  else
    say "installing LungLens$EXTRAS with the CPU build of PyTorch (no NVIDIA GPU found)"
  fi
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q ${CONSTRAINTS[@]+"${CONSTRAINTS[@]}"} -e "$ROOT$EXTRAS"
  echo "$WANT" > "$STAMP"
fi

# The PACS tests talk to a real Orthanc with its DICOMweb plugin (Debian packages); install it
# when we may (root, or sudo without a password); otherwise those tests skip and say why.
if [ "$MODE" = test ] && ! command -v Orthanc >/dev/null 2>&1 && [ ! -x /usr/sbin/Orthanc ] \
   && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if [ -z "$SUDO" ] || sudo -n true 2>/dev/null; then
    say "installing Orthanc + its DICOMweb plugin for the PACS tests (apt-get)"
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q orthanc orthanc-dicomweb; } \
      >/dev/null || say "could not install Orthanc: the PACS tests will skip"
  else
    say "Orthanc is not installed and apt-get needs a password: the PACS tests will skip"
  fi
fi

cd "$ROOT"
case "$MODE" in
  app)
    exec "$VENV/bin/python" -m app "$@" ;;
  engine)
    exec "$VENV/bin/python" -m engine "$@" ;;
  test)
    export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
    set +e
    "$VENV/bin/python" -m pytest "$@"
    status=$?
    set -e
    # pytest's 5 means "no test collected" (for example a -k that matches nothing): say so.
    [ $status -eq 5 ] && say "no test was collected"
    exit $status ;;
esac
