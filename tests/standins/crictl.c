/*
 * Stand-in for crictl (Brine tests): `crictl --version` / `crictl -v` prints
 * "crictl version v1.35.0" like the real one. Everything else, `crictl version` included
 * (the real one asks the container runtime over CRI), exits 64 saying it is a stand-in.
 */
#include "standin.h"

int main(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v"))) {
        printf("crictl version %s\n", GIT_VERSION);
        return 0;
    }
    return standin_refuse("crictl", argc, argv);
}
