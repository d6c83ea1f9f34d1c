#!/usr/bin/env bash
# Builds the OCI image of rampart-collector from scratch — the static (musl) collector,
# its configuration, a passwd entry for its user, the CA roots of the build host's
# ca-certificates, an empty /data — and writes it as an OCI archive (a tar of an OCI
# image layout). No daemon, no registry, no root: the layer is a tar made here,
# umoci adds it and writes the image's configuration.
#
#   bash packaging/oci/build.sh OUTDIR
#
# OUTDIR receives rampart-collector-<v>.oci.tar, which `podman load -i` names
# localhost/rampart-collector:<v>. Installs umoci, musl-tools, binutils and
# ca-certificates with apt and the Rust musl target when missing. Timestamps come from
# SOURCE_DATE_EPOCH (default: the last commit's time), so the same binary gives the
# same archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ws=$(cd "$here/../.." && pwd)
out=${1:?usage: bash packaging/oci/build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# The collector's user and group in the image: not root, not a user of the host.
UID_GID=65532
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
say() { echo "oci/build.sh: $*" >&2; }

need_apt=()
command -v umoci >/dev/null || need_apt+=(umoci)
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v objdump >/dev/null || need_apt+=(binutils)
[ -f "$CA_BUNDLE" ] || need_apt+=(ca-certificates)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
. "$here/../release.sh"
bin=$coll_bin
cd "$ws"
manifest_value() { sed -n "/^\[workspace.package\]/,/^\[/s/^$1 = \"\(.*\)\"$/\1/p" Cargo.toml; }
version=$(manifest_value version)
licence=$(manifest_value license)
source_url=$(manifest_value repository)
[ -n "$version" ] && [ -n "$licence" ] && [ -n "$source_url" ] \
  || { say "no version, license or repository in Cargo.toml [workspace.package]"; exit 1; }
revision=$(git -C "$ws" rev-parse HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ws" log -1 --format=%ct 2>/dev/null || echo 0)}
export LC_ALL=C
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
name=rampart-collector
archive=$name-$version.oci.tar

work=$out/.oci-work
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# The image's one layer, from a staged tree: everything root's and read-only but /data.
root=$work/rootfs
install -d -m 0755 "$root/usr/bin" "$root/etc/rampart" "$root/etc/ssl/certs" \
  "$root/usr/share/doc/$name"
install -d -m 0700 "$root/data"
install -m 0755 "$bin" "$root/usr/bin/rampart-collector"
install -m 0644 "$here/collector.toml" "$root/etc/rampart/collector.toml"
install -m 0644 "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
install -m 0644 "$ws/LICENSE" "$root/usr/share/doc/$name/LICENSE"
printf 'root:x:0:0:root:/:/sbin/nologin\nrampart:x:%s:%s:Rampart collector:/data:/sbin/nologin\n' \
  "$UID_GID" "$UID_GID" > "$root/etc/passwd"
printf 'root:x:0:\nrampart:x:%s:\n' "$UID_GID" > "$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
tar_opts=(--format=gnu --sort=name --mtime="@$SOURCE_DATE_EPOCH" --numeric-owner)
tar -C "$root" -cf "$work/layer.tar" "${tar_opts[@]}" --owner=0 --group=0 etc usr
tar -C "$root" -rf "$work/layer.tar" "${tar_opts[@]}" --owner="$UID_GID" --group="$UID_GID" data

# The image: that layer and a configuration with the OCI annotations, as labels (what
# `podman inspect` shows) and on the manifest.
layout=$work/layout
image=$layout:$version
umoci init --layout "$layout"
umoci new --image "$image"
umoci raw add-layer --image "$image" --history.created "$created" \
  --history.created_by "packaging/oci/build.sh" --history.comment "$name $version (static)" \
  "$work/layer.tar"
description="Rampart collector: scores, stores and gates CIS scans from Rampart agents"
annotations=(
  "org.opencontainers.image.title=$name"
  "org.opencontainers.image.description=$description"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.revision=$revision"
  "org.opencontainers.image.created=$created"
  "org.opencontainers.image.source=$source_url"
  "org.opencontainers.image.url=$source_url"
  "org.opencontainers.image.licenses=$licence"
)
config_args=(
  --created "$created" --author "Rampart maintainers" --no-history
  --config.user "$UID_GID:$UID_GID"
  --config.entrypoint /usr/bin/rampart-collector
  --config.cmd=serve --config.cmd=--config --config.cmd=/etc/rampart/collector.toml
  --config.workingdir /data
  --config.env "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
  --config.env NO_COLOR=1
  --config.exposedports 8443/tcp --config.exposedports 8080/tcp
  --config.volume /data
  --config.stopsignal SIGTERM
)
for a in "${annotations[@]}"; do
  config_args+=(--config.label "$a" --manifest.annotation "$a")
done
umoci config --image "$image" "${config_args[@]}"
umoci gc --layout "$layout"
# umoci takes only a tag as the reference's name; the layout's index may carry a whole
# name (OCI image-layout), which `podman load` then gives the image.
sed -i "s|\"org.opencontainers.image.ref.name\":\"$version\"|\"org.opencontainers.image.ref.name\":\"$name:$version\"|" \
  "$layout/index.json"
grep -q "\"org.opencontainers.image.ref.name\":\"$name:$version\"" "$layout/index.json" \
  || { say "could not name the image in $layout/index.json"; exit 1; }

chmod -R u=rwX,go=rX "$layout"
tar -C "$layout" -cf "$work/$archive" "${tar_opts[@]}" --owner=0 --group=0 oci-layout index.json blobs
mv "$work/$archive" "$out/$archive"
say "wrote $out/$archive ($(du -h "$out/$archive" | cut -f1), sha256 $(sha256sum "$out/$archive" | cut -d' ' -f1))"
