// Command nnp prints its effective uid. Installed setuid root in the
// nonewprivs test image: with no_new_privs the setuid bit has no effect.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
