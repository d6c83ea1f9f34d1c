#!/usr/bin/env bash
# Builds the release binaries (both static, for x86_64-unknown-linux-musl: see
# release.sh) and the .deb and .rpm packages of rampart-agent and rampart-collector.
#
#   bash packaging/build.sh OUTDIR
#
# OUTDIR receives rampart-agent_<v>_amd64.deb, rampart-agent-<v>-1.x86_64.rpm,
# rampart-collector_<v>_amd64.deb, rampart-collector-<v>-1.x86_64.rpm, the static
# rampart-agent, install.sh, rampart-agent.service and SHA256SUMS. Installs musl-tools,
# rpm and the Rust musl target when missing. Incremental: with nothing changed, cargo
# has nothing to do and the packages are not rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ws=$(dirname "$here")
out=${1:?usage: bash packaging/build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
say() { echo "build.sh: $*" >&2; }

need_apt=()
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v rpmbuild >/dev/null || need_apt+=(rpm)
command -v dpkg-deb >/dev/null || need_apt+=(dpkg)
command -v objdump >/dev/null || need_apt+=(binutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
. "$here/release.sh"
cd "$ws"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$version" ] || { say "no version in Cargo.toml [workspace.package]"; exit 1; }
agent_deb=rampart-agent_${version}_amd64.deb
agent_rpm=rampart-agent-${version}-1.x86_64.rpm
coll_deb=rampart-collector_${version}_amd64.deb
coll_rpm=rampart-collector-${version}-1.x86_64.rpm
outputs=("$agent_deb" "$agent_rpm" "$coll_deb" "$coll_rpm" rampart-agent install.sh rampart-agent.service SHA256SUMS)

# Skip packaging when its inputs are the ones the existing outputs were built from.
stamp=$( {
  echo "$version"
  sha256sum "$agent_bin" "$coll_bin"
  (cd "$ws" && find packaging LICENSE -type f | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -d' ' -f1)
up_to_date=yes
for f in "${outputs[@]}"; do [ -f "$out/$f" ] || up_to_date=no; done
if [ "$up_to_date" = yes ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  say "packages in $out are up to date"
  exit 0
fi
rm -f "$out/.stamp"

work=$out/.work
rm -rf "$work"
mkdir -p "$work"
# Reproducible timestamps and no locale in generated text.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ws" log -1 --format=%ct 2>/dev/null || echo 0)}
export LC_ALL=C

# man page from --help: the command and each subcommand's help, verbatim.
manpage() { # BIN NAME DESCRIPTION DEST SUBCOMMAND...
  local bin=$1 name=$2 desc=$3 dest=$4
  shift 4
  local esc="s/\\\\/\\\\e/g; s/^\\./\\\\\\&./; s/^'/\\\\\\&'/"
  mkdir -p "$(dirname "$dest")"
  {
    echo ".TH ${name^^} 8 \"\" \"$name $version\" \"Rampart\""
    echo ".SH NAME"
    echo "$name \\- $desc"
    echo ".SH SYNOPSIS"
    echo ".B $name"
    echo "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]"
    echo ".SH DESCRIPTION"
    echo ".nf"
    "$bin" --help | sed "$esc"
    echo ".fi"
    echo ".SH COMMANDS"
    local sub
    for sub in "$@"; do
      echo ".SS $name $sub"
      echo ".nf"
      # shellcheck disable=SC2086
      "$bin" $sub --help | sed "$esc"
      echo ".fi"
    done
    echo ".SH SEE ALSO"
    echo "systemctl(1), /usr/share/doc/$name/README.md"
  } | gzip -9n > "$dest"
}

# stage PKG FLAVOUR(deb|rpm) ROOT: the package's files under ROOT.
stage() {
  local pkg=$1 flavour=$2 root=$3 unitdir envfile licdir
  if [ "$flavour" = deb ]; then
    unitdir=$root/lib/systemd/system
    envfile=$root/etc/default/$pkg
    licdir=$root/usr/share/doc/$pkg
  else
    unitdir=$root/usr/lib/systemd/system
    envfile=$root/etc/sysconfig/$pkg
    licdir=$root/usr/share/licenses/$pkg
  fi
  install -d -m 0755 "$root/usr/bin" "$unitdir" "$root/etc/rampart" "$root/usr/share/doc/$pkg" "$licdir"
  install -m 0644 "$here/systemd/$pkg.service" "$unitdir/$pkg.service"
  install -m 0644 "$here/README.md" "$root/usr/share/doc/$pkg/README.md"
  if [ "$flavour" = deb ]; then
    cat > "$licdir/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rampart
Source: https://example.invalid/rampart

Files: *
Copyright: The Rampart authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
    chmod 0644 "$licdir/copyright"
  else
    install -m 0644 "$ws/LICENSE" "$licdir/LICENSE"
  fi
  case $pkg in
    rampart-agent)
      install -m 0755 "$agent_bin" "$root/usr/bin/rampart-agent"
      install -d -m 0755 "$(dirname "$envfile")"
      install -m 0644 "$here/etc/rampart-agent.default" "$envfile"
      manpage "$agent_bin" rampart-agent "Rampart agent: CIS benchmark checks" \
        "$root/usr/share/man/man8/rampart-agent.8.gz" check rules enroll run coverage
      ;;
    rampart-collector)
      install -m 0755 "$coll_bin" "$root/usr/bin/rampart-collector"
      install -m 0644 "$here/etc/collector.toml" "$root/etc/rampart/collector.toml"
      install -d -m 0755 "$root/usr/lib/sysusers.d" "$root/usr/share/rampart-collector/download"
      install -m 0644 "$here/etc/rampart-collector.sysusers" "$root/usr/lib/sysusers.d/rampart-collector.conf"
      install -m 0755 "$here/first-admin" "$root/usr/share/rampart-collector/first-admin"
      local f
      for f in "$agent_deb" "$agent_rpm" rampart-agent install.sh rampart-agent.service; do
        install -m 0644 "$work/download/$f" "$root/usr/share/rampart-collector/download/$f"
      done
      chmod 0755 "$root/usr/share/rampart-collector/download/rampart-agent"
      manpage "$coll_bin" rampart-collector "Rampart collector: scores and gates CIS scans" \
        "$root/usr/share/man/man8/rampart-collector.8.gz" serve "user add" "token create" "audit verify"
      ;;
  esac
}

conffiles() { # PKG FLAVOUR
  case $1-$2 in
    rampart-agent-deb) echo /etc/default/rampart-agent ;;
    rampart-agent-rpm) echo /etc/sysconfig/rampart-agent ;;
    rampart-collector-*) echo /etc/rampart/collector.toml ;;
  esac
}

summary() {
  case $1 in
    rampart-agent) echo "Rampart agent: CIS benchmark checks of this host, reported to a collector" ;;
    rampart-collector) echo "Rampart collector: scores, stores and gates CIS scans from Rampart agents" ;;
  esac
}

description() {
  case $1 in
    rampart-agent) echo "The static rampart-agent binary and its hardened systemd unit. Enroll with
'rampart-agent enroll' (it writes /etc/rampart/agent.toml); the unit then runs
the agent read-only as root with only CAP_DAC_READ_SEARCH and CAP_AUDIT_CONTROL." ;;
    rampart-collector) echo "The rampart-collector service (gRPC for agents, REST API), running as its own
system user, with the agent's packages, static binary and install.sh to serve
under /download/." ;;
  esac
}

build_deb() { # PKG FILE
  local pkg=$1 file=$2 root=$work/deb-$1 depends=""
  stage "$pkg" deb "$root"
  mkdir -p "$root/DEBIAN"
  local short=${pkg#rampart-}
  for s in postinst prerm postrm; do
    install -m 0755 "$here/debian/$short.$s" "$root/DEBIAN/$s"
  done
  conffiles "$pkg" deb > "$root/DEBIAN/conffiles"
  if [ "$pkg" = rampart-collector ]; then
    # Static: the maintainer scripts' adduser is all it needs.
    depends="Depends: adduser"$'\n'
  fi
  (cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print \
    | sed 's#^\./##' | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
  local size
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  {
    echo "Package: $pkg"
    echo "Version: $version"
    echo "Architecture: amd64"
    echo "Maintainer: Rampart maintainers <rampart@example.invalid>"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Installed-Size: $size"
    printf '%s' "$depends"
    echo "Homepage: https://example.invalid/rampart"
    echo "Description: $(summary "$pkg")"
    description "$pkg" | sed 's/^/ /'
  } > "$root/DEBIAN/control"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out/$file" >/dev/null
}

build_rpm() { # PKG FILE
  local pkg=$1 file=$2 root=$work/rpmstage-$1 spec=$work/$1.spec
  stage "$pkg" rpm "$root"
  local short=${pkg#rampart-} conf
  conf=$(conffiles "$pkg" rpm)
  {
    echo "Name: $pkg"
    echo "Version: $version"
    echo "Release: 1"
    echo "Summary: $(summary "$pkg")"
    echo "License: Apache-2.0"
    echo "URL: https://example.invalid/rampart"
    echo "ExclusiveArch: x86_64"
    if [ "$pkg" = rampart-agent ]; then echo "AutoReqProv: no"; fi
    echo
    echo "%description"
    description "$pkg"
    echo
    echo "%install"
    echo "cp -a '$root/.' '%{buildroot}/'"
    echo
    cat "$here/rpm/$short.scripts"
    echo
    echo "%files"
    echo "%defattr(-,root,root,-)"
    (cd "$root" && find . -mindepth 1 | sed 's#^\.##' | LC_ALL=C sort) | while read -r p; do
      if [ -d "$root$p" ]; then
        case $p in
          /etc/rampart|/usr/share/doc/$pkg|/usr/share/licenses/$pkg|/usr/share/rampart-collector*) echo "%dir $p" ;;
        esac
      elif [ "$p" = "$conf" ]; then
        echo "%config(noreplace) $p"
      elif [ "$p" = "/usr/share/licenses/$pkg/LICENSE" ]; then
        echo "%license $p"
      else
        echo "$p"
      fi
    done
  } > "$spec"
  rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "_rpmdir $work/rpms" \
    --define "_build_id_links none" \
    --define "debug_package %{nil}" \
    --define "__os_install_post %{nil}" \
    --define "_buildhost rampart-build" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --buildroot "$work/rpmroot-$pkg" \
    "$spec" > "$work/rpmbuild-$pkg.log" 2>&1 || { cat "$work/rpmbuild-$pkg.log" >&2; exit 1; }
  mv "$work/rpms/x86_64/$pkg-$version-1.x86_64.rpm" "$out/$file"
}

say "packaging $version into $out"
build_deb rampart-agent "$agent_deb"
build_rpm rampart-agent "$agent_rpm"
mkdir -p "$work/download"
sed "s/@VERSION@/$version/g" "$here/install.sh" > "$work/download/install.sh"
cp "$agent_bin" "$work/download/rampart-agent"
cp "$here/systemd/rampart-agent.service" "$work/download/rampart-agent.service"
cp "$out/$agent_deb" "$out/$agent_rpm" "$work/download/"
for f in rampart-agent install.sh rampart-agent.service; do
  cp "$work/download/$f" "$out/$f"
done
chmod 0755 "$out/rampart-agent"
build_deb rampart-collector "$coll_deb"
build_rpm rampart-collector "$coll_rpm"
(cd "$out" && sha256sum "$agent_deb" "$agent_rpm" "$coll_deb" "$coll_rpm" rampart-agent install.sh \
  rampart-agent.service > SHA256SUMS)
rm -rf "$work"
echo "$stamp" > "$out/.stamp"
say "done:"
(cd "$out" && ls -l "${outputs[@]}") >&2
