#!/usr/bin/env bash
# hack/test-vm.sh — what this host cannot test, in hack/vm.sh's VM: the whole
# integration suite and the whole of critest on cgroup v2 (this host is v1),
# with AppArmor enabled (this host has none: TestAppArmor, Berth's default
# profile and critest's AppArmor specs run for real); the specs in
# test/critest/must-pass-vm.txt must pass. Needs make build and the test
# registry serving on $BERTH_REGISTRY (make test-vm starts it). Software
# emulation is many times slower: a test's CRI calls get 2 minutes. critest's
# reports end up in _output/critest-vm. Root.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need_vm_test_setup
port=${BERTH_REGISTRY##*:}

"$BERTH_REPO/hack/vm.sh" prepare
# The test binary lives in the repo: the VM sees the host's filesystem.
go test -c -o "$BERTH_REPO/bin/integration.test" ./test/integration
out=$(mktemp -d "$BERTH_CACHE/vm/test.XXXXXX")
keep_critest_report "$out" critest-vm

cat >"$out/suite.sh" <<SUITE
set -u
cd /tmp
rc=0
echo "== integration tests (cgroup v2, AppArmor)"
BERTHD=$BERTH_REPO/bin/berthd BERTH_SHIM=$BERTH_REPO/bin/berth-shim CRICTL=$BERTH_BIN/crictl \\
	BERTH_TEST_REGISTRY=$BERTH_REGISTRY BERTH_TEST_ROOTFS=$BERTH_CACHE/test-images/stage/busybox BERTH_TEST_CALL_TIMEOUT=2m \\
	$BERTH_REPO/bin/integration.test -test.count=1 -test.timeout=40m || rc=1
echo "== critest"
BERTH_REGISTRY_PROVIDED=1 CRITEST_REPORT_DIR=$out/critest \\
	CRITEST_MUST_PASS=$BERTH_REPO/test/critest/must-pass-vm.txt $BERTH_REPO/hack/critest.sh || rc=1
exit \$rc
SUITE
rc=0
VM_OUT="$out" VM_FORWARD="$port" VM_TIMEOUT="${VM_TIMEOUT:-3000}" "$BERTH_REPO/hack/vm.sh" run sh "$out/suite.sh" || rc=1
# The VM's whole kernel log (the console shows only warnings and worse).
mkdir -p "$BERTH_REPO/_output"
cp "$out/dmesg" "$BERTH_REPO/_output/test-vm-dmesg.log" 2>/dev/null || true
# SELinux enforcing, in a VM of its own (about 75 s): TestSELinux and
# critest's SELinux specs.
"$BERTH_REPO/hack/test-vm-selinux.sh" || rc=1
exit $rc
