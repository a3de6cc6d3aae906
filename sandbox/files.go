package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/selinux/go-selinux/label"
)

// writePodFiles writes hostname, hosts and resolv.conf for the pod, each
// through a temp file renamed into place.
func writePodFiles(p *Pod, hostResolvConf string) error {
	hostname := p.Spec.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	resolv, err := resolvConf(p.Spec.DNS, hostResolvConf)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		p.HostnamePath():   []byte(hostname + "\n"),
		p.HostsPath():      hostsFile(hostname),
		p.ResolvConfPath(): resolv,
	}
	for path, data := range files {
		if err := writeFileAtomic(path, data); err != nil {
			return err
		}
		// Readable by the pod's containers on a host with SELinux (a no-op
		// elsewhere).
		if err := label.Relabel(path, p.Spec.SELinuxMountLabel, true); err != nil {
			return fmt.Errorf("relabel %s: %w", path, err)
		}
	}
	return nil
}

func hostsFile(hostname string) []byte {
	return []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n" +
		"127.0.1.1\t" + hostname + "\n")
}

// resolvConf renders the pod's DNS config, or copies the host's file when the
// pod gives none.
func resolvConf(dns DNS, hostFile string) ([]byte, error) {
	if len(dns.Servers) == 0 && len(dns.Searches) == 0 && len(dns.Options) == 0 {
		data, err := os.ReadFile(hostFile)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read host resolv.conf: %w", err)
		}
		return data, nil
	}
	var b bytes.Buffer
	for _, field := range append(append(append([]string{}, dns.Servers...), dns.Searches...), dns.Options...) {
		if strings.ContainsAny(field, "\n\r") {
			return nil, fmt.Errorf("DNS value %q contains a line break", field)
		}
	}
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Searches, " "))
	}
	for _, s := range dns.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	return b.Bytes(), nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
