// Command etcd builds the etcd server from go.etcd.io/etcd/server/v3
// (the upstream etcd binary's main calls etcdmain.Main the same way).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
