#!/usr/bin/env bash
# Makes a throwaway certificate authority and certificates for TLS tests and demos, with the
# openssl command-line tool (Debian's openssl package). Nothing it makes is ever committed.
#
#   scripts/make-test-certs.sh DIR
#
# DIR gets (keys are ECDSA P-256 unless named -rsa):
#   ca.pem, ca.key                the test CA ("Torus Test CA"), which clients trust
#   server.pem, server.key        CN=localhost; SANs localhost, 127.0.0.1, ::1
#   server-rsa.pem, server-rsa.key the same names, an RSA 2048 key
#   other.pem, other.key          CN=other.test; SAN other.test, *.other.test (SNI tests)
#   client.pem, client.key        CN=Torus Test Client, for client authentication (mutual TLS)
#   expired.pem, expired.key      localhost, valid only in 2020
#   future.pem, future.key        localhost, valid only from 2090
#   untrusted-ca.pem              another CA, which nobody trusts
#   untrusted.pem, untrusted.key  localhost, signed by the untrusted CA
#
# Runs in about a second; existing files in DIR are replaced.
set -euo pipefail
dir=${1:?usage: scripts/make-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
command -v openssl >/dev/null || { echo "make-test-certs: openssl is missing (apt-get install -y openssl)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A CA with its own database, so that `openssl ca` can give certificates any validity dates.
make_ca() { # name subject
    local name=$1 subject=$2
    ec_key "$name.key"
    openssl req -x509 -new -key "$name.key" -subj "$subject" -days 3650 -out "$name.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    mkdir -p "$work/$name"
    : >"$work/$name/index.txt"
    cat >"$work/$name/ca.cnf" <<CNF
[ca]
default_ca = this
[this]
dir = $work/$name
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
certificate = $PWD/$name.pem
private_key = $PWD/$name.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = supplied
CNF
    openssl rand -hex 16 >"$work/$name/serial"
}

# sign CA NAME SUBJECT SANS EXTENDED-KEY-USAGE [START END] (dates as YYYYMMDDHHMMSSZ)
sign() {
    local ca=$1 name=$2 subject=$3 sans=$4 usage=$5 start=${6:-} end=${7:-}
    [[ -f $name.key ]] || ec_key "$name.key"
    local request=("-subj" "$subject" "-addext" "extendedKeyUsage=$usage" "-addext" "basicConstraints=CA:FALSE")
    [[ -n $sans ]] && request+=("-addext" "subjectAltName=$sans")
    openssl req -new -key "$name.key" "${request[@]}" -out "$work/$name.csr" 2>/dev/null
    local dates=(-days 825)
    [[ -n $start ]] && dates=(-startdate "$start" -enddate "$end")
    openssl ca -batch -notext -config "$work/$ca/ca.cnf" -in "$work/$name.csr" -out "$name.pem" "${dates[@]}" 2>/dev/null
}

make_ca ca "/CN=Torus Test CA"
make_ca untrusted-ca "/CN=Untrusted Test CA"
local_sans="DNS:localhost,IP:127.0.0.1,IP:::1"
sign ca server "/CN=localhost" "$local_sans" serverAuth
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server-rsa.key 2>/dev/null
sign ca server-rsa "/CN=localhost" "$local_sans" serverAuth
sign ca other "/CN=other.test" "DNS:other.test,DNS:*.other.test" serverAuth
sign ca client "/CN=Torus Test Client" "" clientAuth
sign ca expired "/CN=localhost" "$local_sans" serverAuth 20200101000000Z 20201231000000Z
sign ca future "/CN=localhost" "$local_sans" serverAuth 20900101000000Z 20910101000000Z
sign untrusted-ca untrusted "/CN=localhost" "$local_sans" serverAuth
rm -f untrusted-ca.key
echo "make-test-certs: certificates in $PWD"
