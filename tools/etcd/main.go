// etcd's server binary, built from its server module (the repository's root module,
// which holds the upstream main, replaces its siblings with local paths).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
