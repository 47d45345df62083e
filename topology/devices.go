package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// readDAX reads /sys/bus/dax/devices/daxX.Y (Documentation/ABI/testing/
// sysfs-bus-dax). No directory means no device-DAX support: no devices.
func readDAX(r Root) ([]DAXDevice, error) {
	devs := []DAXDevice{}
	dir := r.sys("bus/dax/devices")
	ents, err := readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return devs, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "dax") || !strings.Contains(name, ".") {
			continue
		}
		d := DAXDevice{Name: name, Path: "/dev/" + name}
		p := filepath.Join(dir, name)
		if d.Size, err = readInt(filepath.Join(p, "size")); err != nil {
			return nil, err
		}
		if d.Align, err = readOptionalInt(filepath.Join(p, "align"), 0); err != nil {
			return nil, err
		}
		// target_node is where the memory is (a CXL or PMEM node);
		// numa_node is the node of the device that exports it.
		node, err := readOptionalInt(filepath.Join(p, "target_node"), -1)
		if err != nil {
			return nil, err
		}
		if node < 0 {
			if node, err = readOptionalInt(filepath.Join(p, "numa_node"), -1); err != nil {
				return nil, err
			}
		}
		d.Node = int(node)
		if l, err := os.Readlink(filepath.Join(p, "driver")); err == nil {
			d.Driver = filepath.Base(l)
		}
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool { return natLess(devs[i].Name, devs[j].Name) })
	return devs, nil
}

// readNVMe reads /sys/class/nvme/nvmeN and the namespaces under each.
func readNVMe(r Root) ([]NVMeController, error) {
	ctrls := []NVMeController{}
	dir := r.sys("class/nvme")
	ents, err := readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return ctrls, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if _, ok := nvmeIndex(e.Name(), "nvme"); !ok {
			continue
		}
		c := NVMeController{Name: e.Name(), Namespaces: []NVMeNamespace{}}
		p := filepath.Join(dir, c.Name)
		for _, f := range []struct {
			file string
			dst  *string
		}{
			{"transport", &c.Transport}, {"address", &c.Address}, {"subsysnqn", &c.SubsysNQN},
			{"model", &c.Model}, {"serial", &c.Serial}, {"state", &c.State},
		} {
			if *f.dst, err = readOptional(filepath.Join(p, f.file)); err != nil {
				return nil, err
			}
		}
		// The controller's own numa_node is -1 for fabrics; a PCIe
		// controller also has it on its PCI function (device/).
		node, err := readOptionalInt(filepath.Join(p, "numa_node"), -1)
		if err != nil {
			return nil, err
		}
		if node < 0 {
			if n, _, ok := deviceNode(r, filepath.Join(p, "device")); ok {
				node = int64(n)
			}
		}
		c.Node = int(node)
		sub, err := readDir(p)
		if err != nil {
			return nil, err
		}
		for _, s := range sub {
			head, ok := nvmeNamespaceName(s.Name())
			if !ok {
				continue
			}
			sectors, err := readInt(filepath.Join(p, s.Name(), "size"))
			if err != nil {
				return nil, err
			}
			c.Namespaces = append(c.Namespaces, NVMeNamespace{Name: head, Size: sectors * 512})
		}
		sort.Slice(c.Namespaces, func(i, j int) bool { return natLess(c.Namespaces[i].Name, c.Namespaces[j].Name) })
		ctrls = append(ctrls, c)
	}
	sort.Slice(ctrls, func(i, j int) bool { return natLess(ctrls[i].Name, ctrls[j].Name) })
	return ctrls, nil
}

// nvmeIndex parses "nvme12" (prefix "nvme") into 12.
func nvmeIndex(s, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || rest == "" {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// nvmeNamespaceName recognizes a namespace directory under a controller:
// "nvme0n1" (no multipath) or "nvme0c1n1" (a multipath path device: path of
// controller 1 to namespace 1 of subsystem 0), and returns the block device
// the user opens: nvme0n1 in both cases.
func nvmeNamespaceName(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, "nvme")
	if !ok {
		return "", false
	}
	subsys, rest, ok := strings.Cut(rest, "n")
	if !ok {
		return "", false
	}
	if x, ctrl, isPath := strings.Cut(subsys, "c"); isPath {
		if _, ok := nvmeIndex(ctrl, ""); !ok {
			return "", false
		}
		subsys = x
	}
	if _, ok := nvmeIndex(subsys, ""); !ok {
		return "", false
	}
	if _, ok := nvmeIndex(rest, ""); !ok {
		return "", false
	}
	return "nvme" + subsys + "n" + rest, true
}

// readNICs reads /sys/class/net/NAME.
func readNICs(r Root) ([]NIC, error) {
	nics := []NIC{}
	dir := r.sys("class/net")
	ents, err := readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nics, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			continue // bonding_masters and other files
		}
		n := NIC{Name: e.Name(), Node: -1}
		if _, err := os.Lstat(filepath.Join(p, "device")); err != nil {
			n.Virtual = true
		} else if node, _, ok := deviceNode(r, filepath.Join(p, "device")); ok {
			n.Node = node
		}
		mtu, err := readOptionalInt(filepath.Join(p, "mtu"), 0)
		if err != nil {
			return nil, err
		}
		n.MTU = int(mtu)
		if n.MAC, err = readOptional(filepath.Join(p, "address")); err != nil {
			return nil, err
		}
		// Reading speed fails with EINVAL on a virtual or down link and
		// says -1 when the driver does not know: both are "unknown".
		if s, err := readString(filepath.Join(p, "speed")); err == nil {
			v, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("topology: read %s: bad number %q", filepath.Join(p, "speed"), s)
			}
			n.SpeedMbps = max(v, 0)
		}
		nics = append(nics, n)
	}
	sort.Slice(nics, func(i, j int) bool { return natLess(nics[i].Name, nics[j].Name) })
	return nics, nil
}

// ReadRDMA lists the verbs devices under r alone (what Read puts in
// Machine.RDMA), for a caller that needs nothing else.
func ReadRDMA(r Root) ([]RDMADevice, error) {
	nics, err := readNICs(r)
	if err != nil {
		return nil, err
	}
	return readRDMA(r, nics)
}

// readRDMA reads /sys/class/infiniband/NAME; a software device takes the
// node of its network interface (one of nics).
func readRDMA(r Root, nics []NIC) ([]RDMADevice, error) {
	devs := []RDMADevice{}
	dir := r.sys("class/infiniband")
	ents, err := readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return devs, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		d := RDMADevice{Name: e.Name(), Node: -1, Kind: "hca"}
		switch {
		case strings.HasPrefix(d.Name, "rxe"):
			d.Kind = "rxe"
		case strings.HasPrefix(d.Name, "siw"):
			d.Kind = "siw"
		}
		if state, err := readOptional(filepath.Join(p, "ports", "1", "state")); err != nil {
			return nil, err
		} else if _, name, ok := strings.Cut(state, ": "); ok {
			d.State = name // "4: ACTIVE"
		} else {
			d.State = state
		}
		if d.LinkLayer, err = readOptional(filepath.Join(p, "ports", "1", "link_layer")); err != nil {
			return nil, err
		}
		if d.Netdev, err = readOptional(filepath.Join(p, "parent")); err != nil {
			return nil, err
		}
		if d.Netdev == "" {
			if d.Netdev, err = readOptional(filepath.Join(p, "ports", "1", "gid_attrs", "ndevs", "0")); err != nil {
				return nil, err
			}
		}
		if node, _, ok := deviceNode(r, filepath.Join(p, "device")); ok {
			d.Node = node
		} else {
			for _, n := range nics {
				if n.Name == d.Netdev {
					d.Node = n.Node
				}
			}
		}
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool { return natLess(devs[i].Name, devs[j].Name) })
	return devs, nil
}

// deviceNode resolves a sysfs device path and walks up its parents to the
// first numa_node file, as a device inherits the node of the bus it hangs
// off (a virtio function has none, its PCI function has). It returns the
// node (-1 when the firmware does not say), the sysfs path that said it, and
// whether any numa_node file was found below r.Sys/devices.
func deviceNode(r Root, dev string) (int, string, bool) {
	p, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return -1, "", false
	}
	top, err := filepath.EvalSymlinks(r.sys("devices"))
	if err != nil {
		return -1, "", false
	}
	for p != top && strings.HasPrefix(p, top+string(filepath.Separator)) {
		if s, err := readString(filepath.Join(p, "numa_node")); err == nil {
			n, err := strconv.Atoi(s)
			if err != nil {
				return -1, "", false
			}
			return max(n, -1), p, true
		}
		p = filepath.Dir(p)
	}
	return -1, "", false
}

// natLess orders names with numbers by their value: nvme2 before nvme10.
func natLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:da], 10, 64)
			nb, _ := strconv.ParseUint(b[:db], 10, 64)
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitsPrefix(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
