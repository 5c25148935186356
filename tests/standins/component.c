/*
 * Stand-in for a Kubernetes image's program (kube-apiserver, kube-controller-manager,
 * kube-scheduler, kube-proxy, coredns) until the real-Kubernetes lane builds the real
 * ones. With --version (or -version, or `version`) it prints the real program's version
 * line and which component it stands in for; otherwise it says it is a stand-in on
 * stderr and sleeps until SIGTERM or SIGINT (exit 0), reaping children like an init.
 *
 * Build: gcc -static -O2 -s -DCOMPONENT='"kube-apiserver"' -DVERSION_LINE='"Kubernetes v1.37.2"'
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef COMPONENT
#error "build with -DCOMPONENT=\"kube-apiserver\""
#endif
#ifndef VERSION_LINE
#error "build with -DVERSION_LINE=\"Kubernetes v1.37.2\""
#endif

static void on_stop(int signo) {
    (void)signo;
    static const char message[] = "Brine stand-in for " COMPONENT ": stopping\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    _exit(0);
}

static void on_child(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-version") || !strcmp(argv[i], "version")) {
            printf("%s (Brine stand-in for %s)\n", VERSION_LINE, COMPONENT);
            return 0;
        }
    }
    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGTERM, &stop, NULL) < 0 || sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGCHLD, &child, NULL) < 0)
        return 2;
    fprintf(stderr, "Brine stand-in for %s (%s): not the real program; sleeping until SIGTERM\n", COMPONENT,
            VERSION_LINE);
    for (;;)
        pause();
}
