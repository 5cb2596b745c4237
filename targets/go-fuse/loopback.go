// go-fuse-loopback SOURCE MOUNTPOINT: go-fuse's loopback file system (fs.NewLoopbackRoot,
// passthrough on by default) over SOURCE. A validation fixture: Debian's go-fuse package
// ships the library without its example/ directory. As root without fusermount it mounts
// with DirectMount.
package main

import (
	"fmt"
	"os"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go-fuse-loopback SOURCE MOUNTPOINT")
		os.Exit(2)
	}
	root, err := fs.NewLoopbackRoot(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-fuse-loopback: %v\n", err)
		os.Exit(1)
	}
	server, err := fs.Mount(os.Args[2], root, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			FsName:      "go-fuse-loopback",
			Name:        "loopback",
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-fuse-loopback: %v\n", err)
		os.Exit(1)
	}
	server.Wait()
}
