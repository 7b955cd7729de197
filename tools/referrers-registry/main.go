// go-containerregistry's registry (pkg/registry, the in-process registry its own tests
// use) with its referrers API switched on, served on one address: the registry with
// `GET /v2/<name>/referrers/<digest>` that the tests check attestations against, as
// neither Debian's distribution 2.8 nor distribution 3.1 has that endpoint.
//
//	referrers-registry 127.0.0.1:5000
package main

import (
	"log"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: referrers-registry ADDRESS")
	}
	handler := registry.New(registry.WithReferrersSupport(true))
	log.Fatal(http.ListenAndServe(os.Args[1], handler))
}
