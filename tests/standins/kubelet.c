/*
 * Stand-in for kubelet (Brine tests): `kubelet --version` prints "Kubernetes v1.37.2"
 * like the real one (`--version=raw` the version struct); anything else exits 64 saying
 * it is a stand-in, so a kubelet unit using it fails visibly.
 */
#include "standin.h"

int main(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "--version=true")) {
            printf("Kubernetes %s\n", GIT_VERSION);
            return 0;
        }
        if (!strcmp(argv[i], "--version=raw")) {
            standin_print_info_struct();
            printf("\n");
            return 0;
        }
    }
    return standin_refuse("kubelet", argc, argv);
}
