package spec

// DefaultAppArmorProfileText is Berth's own AppArmor profile for containers,
// loaded as DefaultAppArmorProfile where the host runs AppArmor (see
// container.LoadAppArmorProfile). It confines what the runtime's masks and
// read-only paths already keep away, so that a missing mask is not a hole:
// a container acts freely inside its namespaces, but mounts nothing, cannot
// unmount the masks, and reaches neither kernel memory, host-wide sysctls
// nor firmware, debug or security interfaces. Signals and ptrace stay
// between processes under this profile (the runtime, unconfined, may signal
// them).
const DefaultAppArmorProfileText = `#include <tunables/global>

profile ` + DefaultAppArmorProfile + ` flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>

  # Inside its own namespaces a container may do what its capabilities allow.
  file,
  network,
  capability,

  # Signals and tracing: among the container's processes; the runtime's
  # signals come in.
  signal (send, receive) peer=` + DefaultAppArmorProfile + `,
  signal (receive) peer=unconfined,
  ptrace (trace, read, tracedby, readby) peer=` + DefaultAppArmorProfile + `,

  # The runtime made every mount; none is added, moved or taken off (an
  # unmounted mask would uncover what it hides).
  deny mount,
  deny umount,
  deny pivot_root,

  # Kernel memory and the magic SysRq key.
  deny @{PROC}/{kcore,kmem,mem,sysrq-trigger} rwklx,
  # Host-wide sysctls (the network's are the pod's own).
  deny @{PROC}/sys/{abi,debug,dev,fs,kernel,user,vm}/** wklx,
  # Firmware, kernel debug and security interfaces; no writes to devices,
  # buses or modules.
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/{debug,security}/** rwklx,
  deny /sys/{block,bus,class,dev,devices,hypervisor,kernel,module,power}/** wklx,
}
`
