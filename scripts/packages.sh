# Sourced by demo.sh, tests/run.sh, bench/run.sh and .ci/run: the Debian packages of
# the named groups in scripts/packages.txt, and installing the missing ones.

packages_file="$(dirname "${BASH_SOURCE[0]}")/packages.txt"

# Prints the packages of the named groups, one per line.
packages_of() {
  local group
  for group in "$@"; do
    grep -q "^$group:" "$packages_file" || { echo "packages.sh: no group '$group' in $packages_file" >&2; return 1; }
    sed -n "s/^$group:[[:space:]]*//p" "$packages_file" | tr -s ' ' '\n'
  done
}

# Prints the packages of the named groups that are not installed.
missing_packages() {
  local p
  for p in $(packages_of "$@"); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# Installs what the named groups lack: as root with apt-get (update once, then install);
# otherwise prints the one command to run and returns 1.
need_packages() {
  local missing
  missing=$(missing_packages "$@" | tr '\n' ' ')
  missing=${missing% }
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "== installing $missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "missing Debian packages: $missing" >&2
    echo "install them with:  sudo apt-get install $missing" >&2
    return 1
  fi
}
