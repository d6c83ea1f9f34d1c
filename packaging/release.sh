# Sourced by packaging/build.sh and packaging/oci/build.sh: the one release build of
# the workspace's two programs, both static (x86_64-unknown-linux-musl), so the .deb,
# the .rpm and the OCI image ship the same collector and a CI run builds it once.
# Needs $ws (the workspace) and say(); sets agent_bin and coll_bin.
# RAMPART_RELEASE_PROFILE picks another cargo profile (the tests use `package-test`,
# the same settings without LTO; see Cargo.toml); `release` is what ships.
profile=${RAMPART_RELEASE_PROFILE:-release}
MUSL=x86_64-unknown-linux-musl
if ! rustup target list --installed | grep -qx "$MUSL"; then
  rustup target add "$MUSL"
fi
# A cargo started from a test inherits the test's CARGO_PKG_*, CARGO_MANIFEST_* and
# OUT_DIR, which build scripts (ring's, libc's) watch: without them this build is the
# one a shell makes, not a second one rebuilt at every switch between the two.
for v in $(compgen -e); do
  case $v in
    CARGO_PKG_* | CARGO_MANIFEST_* | CARGO_CRATE_* | CARGO_BIN_* | CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR | OUT_DIR) unset "$v" ;;
  esac
done
# Both packages in one invocation: their shared dependencies are built once, with
# the same features, and a later call with nothing changed has nothing to do.
(cd "$ws" && cargo build --profile "$profile" --locked -p rampart-agent -p rampart-collector --target "$MUSL")
release_dir=$(cd "$ws" && cargo metadata --format-version 1 --no-deps --locked \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/$MUSL/$profile
agent_bin=$release_dir/rampart-agent
coll_bin=$release_dir/rampart-collector
for bin in "$agent_bin" "$coll_bin"; do
  if objdump -p "$bin" | grep -q -e NEEDED -e INTERP; then
    say "$bin is not static"
    exit 1
  fi
done
