#!/usr/bin/env bash
# hack/test-vm-selinux.sh — what needs SELinux enforcing, in hack/vm.sh's VM
# booted with VM_LSM=selinux (Debian's default policy and its container
# module; hack/selinux-policy.sh): berthd, labelled container_engine_exec_t on
# the VM's scratch disk, runs in the container engine's domain; TestSELinux,
# TestUserNamespaces (a user namespace and SELinux labels together),
# TestImageVolume, TestImageMount (image mounts carry the pod's mount label),
# the streaming tests (exec, attach, port-forward) and
# critest's SELinux specs run against it. The policy's denials are printed.
# Needs make build and the test registry serving on $BERTH_REGISTRY (make
# test-vm starts it); hack/test-vm.sh calls it. critest's reports end up in
# _output/critest-vm-selinux. Root.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need_vm_test_setup
port=${BERTH_REGISTRY##*:}

VM_LSM=selinux "$BERTH_REPO/hack/vm.sh" prepare
[[ -x $BERTH_REPO/bin/integration.test && $BERTH_REPO/bin/integration.test -nt $BERTH_REPO/bin/berthd ]] ||
	go test -c -o "$BERTH_REPO/bin/integration.test" ./test/integration
out=$(mktemp -d "$BERTH_CACHE/vm/test-selinux.XXXXXX")
keep_critest_report "$out" critest-vm-selinux

cat >"$out/suite.sh" <<SUITE
set -u
cd /tmp
rc=0
echo "== SELinux: \$(getenforce), init runs as \$(cat /proc/self/attr/current)"
# The host's files are all bin_t: berthd, its shims and its runtime get their type on the
# scratch disk, and enter the engine's domain when run (berth_vm.te).
bin=/tmp/berth-bin
mkdir -p \$bin
cp $BERTH_REPO/bin/berthd $BERTH_REPO/bin/berth-shim $BERTH_REPO/bin/berth-runtime \$bin/
chcon system_u:object_r:container_engine_exec_t:s0 \$bin/berthd \$bin/berth-shim \$bin/berth-runtime
# The daemons' roots, states and logs: labelled as the policy labels a
# container engine's image layers (/var/lib/containers/overlay*), which its
# containers read through their rootfs mounts: container_ro_file_t.
mkdir -p /tmp/berth-var
chcon system_u:object_r:container_ro_file_t:s0 /tmp/berth-var
export TMPDIR=/tmp/berth-var
echo "== TestSELinux; user namespaces, image volumes, image mounts and streaming with SELinux labels"
BERTHD=\$bin/berthd CRICTL=$BERTH_BIN/crictl BERTH_TEST_REGISTRY=$BERTH_REGISTRY BERTH_TEST_CALL_TIMEOUT=2m \\
	$BERTH_REPO/bin/integration.test -test.count=1 -test.timeout=15m -test.v -test.run '^(TestSELinux|TestUserNamespaces|TestImageVolume|TestImageMount|TestExecSessions|TestAttachSessions|TestPortForward)\$' || rc=1
echo "== critest (SELinux specs)"
BERTHD=\$bin/berthd BERTH_REGISTRY_PROVIDED=1 CRITEST_REPORT_DIR=$out/critest CRITEST_FOCUS=SELinux \\
	CRITEST_MUST_PASS=$BERTH_REPO/test/critest/must-pass-vm-selinux.txt $BERTH_REPO/hack/critest.sh || rc=1
echo "== SELinux denials"
dmesg | grep 'avc: *denied' | sed 's/^\[[^]]*\] *//; s/ pid=[0-9]*//; s/ ino=[0-9]*//' | sort | uniq -c
exit \$rc
SUITE
VM_LSM=selinux VM_OUT="$out" VM_FORWARD="$port" VM_TIMEOUT="${VM_TIMEOUT:-1200}" "$BERTH_REPO/hack/vm.sh" run sh "$out/suite.sh"
