package transport

import "syscall"

// setDeathSignal has the kernel kill the command when the thread that started it, and so this
// process, dies. The Go runtime does not end its threads (none is locked here), so this fires
// only when the process ends.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
