#!/bin/sh
# =====================================================================
#  EXAMPLE PKI FOR DEVELOPMENT AND TESTS ONLY.
#
#  This script creates an EXAMPLE certificate authority whose private
#  key (tls/ca-key.pem) is checked into a public repository. Anyone can
#  sign certificates with it. NEVER trust tls/ca.pem anywhere real, and
#  never use these keys or certificates outside tests and local demos.
# =====================================================================
#
# Regenerates every key and certificate in this directory (running it
# again replaces them all): ECDSA P-521 keys, SHA-512 signatures, valid
# for 10 years.
#
#   ca.pem / ca-key.pem           example CA
#   server.pem / server-key.pem   DNS:localhost, IP:127.0.0.1, IP:::1
#   client.pem / client-key.pem   DNS:client.rund.test,
#                                 URI:spiffe://rund.test/team-a
#   client2.pem / client2-key.pem DNS:client2.rund.test,
#                                 URI:spiffe://rund.test/team-a
#                                 (shares one SAN with client)
#   client3.pem / client3-key.pem DNS:client3.rund.test,
#                                 URI:spiffe://rund.test/team-b
#                                 (shares none with client or client2)
#
# Usage: tls/gen.sh [output-dir]   (default: the directory of this script)
set -eu

dir=${1:-$(dirname "$0")}
days=3650
umask 077
cd "$dir"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 \
		-pkeyopt ec_param_enc:named_curve -out "$1"
}

# leaf NAME CN EKU SAN...: key + certificate signed by the example CA.
leaf() {
	name=$1 cn=$2 eku=$3
	shift 3
	san=$(printf '%s,' "$@")
	san=${san%,}
	cat >"$tmp/$name.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	newkey "$name-key.pem"
	openssl req -new -key "$name-key.pem" -subj "/O=rund example/CN=$cn" \
		-sha512 -out "$tmp/$name.csr"
	openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca-key.pem \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha512 \
		-extfile "$tmp/$name.ext" -out "$name.pem"
}

cat >"$tmp/ca.ext" <<EOF
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
newkey ca-key.pem
openssl req -new -key ca-key.pem \
	-subj "/O=rund example/CN=rund EXAMPLE CA (private key is public)" \
	-sha512 -out "$tmp/ca.csr"
openssl x509 -req -in "$tmp/ca.csr" -signkey ca-key.pem \
	-set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha512 \
	-extfile "$tmp/ca.ext" -out ca.pem

leaf server localhost serverAuth \
	DNS:localhost IP:127.0.0.1 IP:::1
leaf client client.rund.test clientAuth \
	DNS:client.rund.test URI:spiffe://rund.test/team-a
leaf client2 client2.rund.test clientAuth \
	DNS:client2.rund.test URI:spiffe://rund.test/team-a
leaf client3 client3.rund.test clientAuth \
	DNS:client3.rund.test URI:spiffe://rund.test/team-b

# Certificates are public; keys stay 0600 (umask above), though these
# particular keys are published anyway.
chmod 0644 ca.pem server.pem client.pem client2.pem client3.pem

for c in server client client2 client3; do
	openssl verify -CAfile ca.pem "$c.pem" >/dev/null
done
echo "gen.sh: example PKI written to $(pwd)"
