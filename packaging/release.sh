# Sourced by packaging/build.sh and packaging/oci/build.sh: the one release build of
# the workspace's two programs, both static (x86_64-unknown-linux-musl), so the .deb,
# the .rpm and the OCI image ship the same collector and a CI run builds it once.
# Needs $ws (the workspace) and say(); sets agent_bin and coll_bin.
# RAMPART_RELEASE_PROFILE picks another cargo profile for both (the tests use
# `package-test`, the same settings without LTO; see Cargo.toml); `release` (the
# agent in `release`, the collector in `collector`) is what ships.
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
target_dir=$(cd "$ws" && cargo metadata --format-version 1 --no-deps --locked \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/$MUSL
if [ "$profile" = release ]; then
  # What ships: the agent built for size (`release`), the collector for speed
  # (`collector`: every crate at opt-level 3; Cargo.toml). Two invocations, so the
  # shared dependencies are built twice, once per profile.
  (cd "$ws" && cargo build --profile release --locked -p rampart-agent --target "$MUSL")
  (cd "$ws" && cargo build --profile collector --locked -p rampart-collector --target "$MUSL")
  agent_bin=$target_dir/release/rampart-agent
  coll_bin=$target_dir/collector/rampart-collector
else
  # Another profile (the tests' `package-test`): both packages in one invocation, so
  # their shared dependencies are built once, with the same features, and a later call
  # with nothing changed has nothing to do.
  (cd "$ws" && cargo build --profile "$profile" --locked -p rampart-agent -p rampart-collector --target "$MUSL")
  agent_bin=$target_dir/$profile/rampart-agent
  coll_bin=$target_dir/$profile/rampart-collector
fi
for bin in "$agent_bin" "$coll_bin"; do
  if objdump -p "$bin" | grep -q -e NEEDED -e INTERP; then
    say "$bin is not static"
    exit 1
  fi
done
