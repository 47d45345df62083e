package topology

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// statDev returns the device a path's data lives on: st_rdev for a block or
// character device file (char reports which), else st_dev.
func statDev(path string) (char bool, major, minor uint32, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, 0, 0, fmt.Errorf("stat: %w", err)
	}
	dev := st.Dev
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		dev = st.Rdev
	case unix.S_IFCHR:
		dev, char = st.Rdev, true
	}
	return char, unix.Major(dev), unix.Minor(dev), nil
}
