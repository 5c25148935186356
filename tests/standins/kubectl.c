/*
 * Stand-in for kubectl (Brine tests): `kubectl version --client [-o json|yaml]` answers
 * like the real one. `kubectl version` without --client prints the client part and then
 * fails, as the real one does with no API server to ask. Anything else exits 64 saying
 * it is a stand-in.
 */
#include "standin.h"

#ifndef KUSTOMIZE_VERSION
#define KUSTOMIZE_VERSION "v5.7.1"
#endif

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "version")) {
        int client_only = standin_has_flag(argc, argv, "--client") && !standin_has_flag(argc, argv, "--client=false");
        const char *output = standin_output_flag(argc, argv);
        if (output == NULL) {
            printf("Client Version: %s\nKustomize Version: %s\n", GIT_VERSION, KUSTOMIZE_VERSION);
        } else if (!strcmp(output, "json")) {
            printf("{\n  \"clientVersion\": ");
            standin_print_info_json("    ", "  ");
            printf(",\n  \"kustomizeVersion\": \"%s\"\n}\n", KUSTOMIZE_VERSION);
        } else if (!strcmp(output, "yaml")) {
            printf("clientVersion:\n");
            standin_print_info_yaml("  ");
            printf("kustomizeVersion: %s\n", KUSTOMIZE_VERSION);
        } else {
            fprintf(stderr, "error: --output must be 'yaml' or 'json'\n");
            return 1;
        }
        if (client_only)
            return 0;
        fprintf(stderr, "error: kubectl %s is a Brine stand-in (tests/standins): it cannot ask an API server "
                        "for its version\n", GIT_VERSION);
        return 1;
    }
    return standin_refuse("kubectl", argc, argv);
}
