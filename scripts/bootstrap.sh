#!/usr/bin/env bash
# Installs what building Torus needs, when it is missing: liburing (>= 2.3) development files,
# OpenSSL 3 development files (libssl-dev, for TorusTLS) and the openssl tool (which makes
# the tests' throwaway certificates), and any extra Debian packages named as arguments. Checks that Swift is installed.
#
#   scripts/bootstrap.sh [PACKAGE ...]       e.g. scripts/bootstrap.sh strace socat netcat-openbsd
#   scripts/bootstrap.sh --print-path [PACKAGE ...]
#
# Idempotent, and silent when everything is already there. Installs with apt-get (through sudo
# when not root). Messages go to standard error. With --print-path it prints, on standard
# output, a PATH under which `swift` is found (the current PATH, plus the toolchain directory
# when swift was found off the PATH); the other scripts use it like this:
#
#   PATH=$(scripts/bootstrap.sh --print-path); export PATH
set -euo pipefail

readonly min_liburing=2.3
readonly min_openssl=3.0
readonly min_swift=6.1

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

print_path=false
if [[ ${1-} == --print-path ]]; then
    print_path=true
    shift
fi
for package in "$@"; do
    [[ $package =~ ^[a-z0-9][a-z0-9.+-]*$ ]] || die "not a Debian package name: '$package'"
done

# --- What is missing -------------------------------------------------------------------------

have_dpkg=false
command -v dpkg-query >/dev/null 2>&1 && have_dpkg=true

# Whether a Debian package is installed (false when there is no dpkg to ask).
deb_installed() {
    $have_dpkg && [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *"ok installed" ]]
}

# Whether usable liburing development files are present. Dies if they are too old.
liburing_present() {
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists liburing 2>/dev/null; then
        pkg-config --atleast-version="$min_liburing" liburing \
            || die "liburing $(pkg-config --modversion liburing) is installed, but Torus needs liburing >= $min_liburing (Debian 12 / Ubuntu 24.04 have it; elsewhere build it from https://github.com/axboe/liburing)"
        return 0
    fi
    if deb_installed liburing-dev; then
        local version
        version=$(dpkg-query -W -f='${Version}' liburing-dev)
        dpkg --compare-versions "$version" ge "$min_liburing" \
            || die "liburing-dev $version is installed, but Torus needs liburing >= $min_liburing (Debian 12 / Ubuntu 24.04 have it; elsewhere build it from https://github.com/axboe/liburing)"
        return 0
    fi
    [[ -f /usr/include/liburing.h || -f /usr/local/include/liburing.h ]]
}

# Whether OpenSSL 3 development files are present. Dies if they are older.
openssl_present() {
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl 2>/dev/null; then
        pkg-config --atleast-version="$min_openssl" openssl \
            || die "OpenSSL $(pkg-config --modversion openssl) is installed, but TorusTLS needs OpenSSL >= $min_openssl (Debian 12 / Ubuntu 22.04 have it)"
        return 0
    fi
    if deb_installed libssl-dev; then
        local version
        version=$(dpkg-query -W -f='${Version}' libssl-dev)
        dpkg --compare-versions "$version" ge "$min_openssl" \
            || die "libssl-dev $version is installed, but TorusTLS needs OpenSSL >= $min_openssl (Debian 12 / Ubuntu 22.04 have it)"
        return 0
    fi
    [[ -f /usr/include/openssl/ssl.h || -f /usr/local/include/openssl/ssl.h ]]
}

missing=()
liburing_present || missing+=(liburing-dev)
openssl_present || missing+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
for package in "$@"; do
    if $have_dpkg; then
        deb_installed "$package" || missing+=("$package")
    else
        # No dpkg to ask: look for the command the package provides.
        command=$package
        [[ $package == netcat-* ]] && command=nc
        command -v "$command" >/dev/null 2>&1 || missing+=("$package")
    fi
done

# --- Install it ------------------------------------------------------------------------------

if ((${#missing[@]} > 0)); then
    if ! command -v apt-get >/dev/null 2>&1; then
        if [[ " ${missing[*]} " == *" liburing-dev "* ]]; then
            say "liburing development files are missing and there is no apt-get to install them."
            say "Install liburing >= $min_liburing with its headers (the package is liburing-devel on Fedora,"
            say "liburing on Arch, or build https://github.com/axboe/liburing), then run this again."
        fi
        die "cannot install without apt-get; please install: ${missing[*]}"
    fi
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root to install ${missing[*]}; run as root or install sudo"
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
    liburing_present || die "liburing-dev was installed but liburing.h is still missing"
fi

# --- Swift -----------------------------------------------------------------------------------

swift_dir=""
if ! command -v swift >/dev/null 2>&1; then
    for dir in /opt/swift/usr/bin "$HOME/.local/share/swiftly/bin" "$HOME/.swiftly/bin" /usr/share/swift/usr/bin; do
        if [[ -x $dir/swift ]]; then
            swift_dir=$dir
            break
        fi
    done
    [[ -n $swift_dir ]] || die "swift is not installed (or not on PATH). Torus needs Swift $min_swift or later: see https://www.swift.org/install/linux/"
    say "swift is not on PATH; using $swift_dir/swift (add 'export PATH=$swift_dir:\$PATH' to your shell profile)"
    PATH=$swift_dir:$PATH
fi

swift_version=$(swift --version 2>&1 | sed -n 's/.*Swift version \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)
if [[ -n $swift_version ]] && ! printf '%s\n%s\n' "$min_swift" "$swift_version" | sort -C -V; then
    die "Swift $swift_version is installed, but Torus needs Swift $min_swift or later: see https://www.swift.org/install/linux/"
fi

if $print_path; then
    printf '%s\n' "$PATH"
fi
