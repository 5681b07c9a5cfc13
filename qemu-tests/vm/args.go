package vm

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// runtimePaths are the per-VM files Start creates before building the argv.
type runtimePaths struct {
	TmpDir        string
	OVMFVars      string // private writable copy of the OVMF variable store
	Serial1Socket string // unix socket for ttyS1
}

// Args turns a Config (with defaults applied) into QEMU's argv, without the
// program name. It is pure so that the mapping is unit-testable.
func Args(cfg Config, rt runtimePaths) ([]string, error) {
	a := []string{
		"-name", cfg.Name,
		"-machine", cfg.Machine,
		"-cpu", cfg.CPU,
		"-m", strconv.Itoa(cfg.MemoryMB),
		"-smp", strconv.Itoa(cfg.CPUs),
		"-display", "none",
		"-monitor", "none",
		"-parallel", "none",
		// ttyS0 is stdio: the conversation. signal=off so a ^C typed with
		// Send reaches the guest instead of killing QEMU.
		"-chardev", "stdio,id=con0,signal=off",
		"-serial", "chardev:con0",
	}
	for _, acc := range strings.Split(cfg.Accel, ":") {
		if acc = strings.TrimSpace(acc); acc != "" {
			a = append(a, "-accel", acc)
		}
	}
	if cfg.Serial1 {
		if rt.Serial1Socket == "" {
			return nil, fmt.Errorf("vm: Serial1 needs a socket path")
		}
		a = append(a, "-chardev", "socket,id=con1,path="+rt.Serial1Socket+",server=on,wait=off", "-serial", "chardev:con1")
	}
	if cfg.NoReboot {
		a = append(a, "-no-reboot")
	}
	if cfg.Firmware == UEFI {
		if rt.OVMFVars == "" {
			return nil, fmt.Errorf("vm: UEFI needs a private OVMF variable store")
		}
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+rt.OVMFVars)
	}
	if cfg.Kernel != "" {
		a = append(a, "-kernel", cfg.Kernel)
		if cfg.Initrd != "" {
			a = append(a, "-initrd", cfg.Initrd)
		}
		if cfg.Append != "" {
			a = append(a, "-append", cfg.Append)
		}
	} else if cfg.Initrd != "" || cfg.Append != "" {
		return nil, fmt.Errorf("vm: Initrd and Append need Kernel")
	}

	boot := 0 // next bootindex
	var scsi, xhci bool
	for i, d := range cfg.Disks {
		if d.Path == "" {
			return nil, fmt.Errorf("vm: disk %d: no path", i)
		}
		format := d.Format
		if format == "" {
			format = "raw"
		}
		if format != "raw" && format != "qcow2" {
			return nil, fmt.Errorf("vm: disk %d: format %q (want raw or qcow2)", i, format)
		}
		id := fmt.Sprintf("disk%d", i)
		drive := "file=" + escapeOpt(d.Path) + ",format=" + format + ",if=none,id=" + id + ",cache=unsafe"
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		var dev string
		switch d.Interface {
		case "", "virtio":
			dev = "virtio-blk-pci,drive=" + id
		case "nvme":
			serial := d.Serial
			if serial == "" {
				serial = fmt.Sprintf("nvme%d", i) // QEMU requires one
			}
			d.Serial = ""
			dev = "nvme,drive=" + id + ",serial=" + escapeOpt(serial)
		case "ide":
			dev = "ide-hd,drive=" + id
		case "scsi":
			if !scsi {
				a = append(a, "-device", "virtio-scsi-pci,id=scsi0")
				scsi = true
			}
			dev = "scsi-hd,drive=" + id + ",bus=scsi0.0"
		case "usb":
			if !xhci {
				a = append(a, "-device", "qemu-xhci,id=xhci")
				xhci = true
			}
			dev = "usb-storage,drive=" + id + ",bus=xhci.0,removable=on"
		default:
			return nil, fmt.Errorf("vm: disk %d: interface %q (want virtio, nvme, ide, usb or scsi)", i, d.Interface)
		}
		if d.Serial != "" {
			dev += ",serial=" + escapeOpt(d.Serial)
		}
		if d.SectorSize != 0 {
			if d.SectorSize < 512 || d.SectorSize&(d.SectorSize-1) != 0 {
				return nil, fmt.Errorf("vm: disk %d: sector size %d (want a power of two, at least 512)", i, d.SectorSize)
			}
			dev += fmt.Sprintf(",logical_block_size=%d,physical_block_size=%d", d.SectorSize, d.SectorSize)
		}
		if d.Boot {
			dev += ",bootindex=" + strconv.Itoa(boot)
			boot++
		}
		a = append(a, "-drive", drive, "-device", dev)
	}
	if cfg.CDROM != "" {
		a = append(a,
			"-drive", "file="+escapeOpt(cfg.CDROM)+",format=raw,if=none,id=cd0,media=cdrom,readonly=on",
			"-device", "ide-cd,drive=cd0,bootindex="+strconv.Itoa(boot))
		boot++
	}
	if n := cfg.Net; n != nil {
		nd := "user,id=net0"
		if n.TFTPDir != "" {
			nd += ",tftp=" + escapeOpt(n.TFTPDir)
		}
		if n.BootFile != "" {
			nd += ",bootfile=" + escapeOpt(n.BootFile)
		}
		for _, f := range n.HostFwd {
			nd += ",hostfwd=" + escapeOpt(f)
		}
		nic := n.NIC
		if nic == "" {
			nic = "virtio-net-pci"
		}
		dev := nic + ",netdev=net0"
		if n.MAC != "" {
			if _, err := net.ParseMAC(n.MAC); err != nil {
				return nil, fmt.Errorf("vm: net: %w", err)
			}
			dev += ",mac=" + n.MAC
		}
		if n.BootFile != "" {
			dev += ",bootindex=" + strconv.Itoa(boot)
		}
		a = append(a, "-netdev", nd, "-device", dev)
	} else {
		a = append(a, "-nic", "none")
	}
	return append(a, cfg.ExtraArgs...), nil
}

// escapeOpt doubles commas, QEMU's escape inside option values.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }
