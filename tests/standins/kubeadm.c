/*
 * Stand-in for kubeadm (Brine tests): `kubeadm version [-o short|json|yaml]` answers
 * like the real one; anything else exits 64 saying it is a stand-in.
 */
#include "standin.h"

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "version")) {
        const char *output = standin_output_flag(argc, argv);
        if (output == NULL || !strcmp(output, "")) {
            printf("kubeadm version: ");
            standin_print_info_struct();
            printf("\n");
        } else if (!strcmp(output, "short")) {
            printf("%s\n", GIT_VERSION);
        } else if (!strcmp(output, "json")) {
            printf("{\n  \"clientVersion\": ");
            standin_print_info_json("    ", "  ");
            printf("\n}\n");
        } else if (!strcmp(output, "yaml")) {
            printf("clientVersion:\n");
            standin_print_info_yaml("  ");
        } else {
            fprintf(stderr, "error: invalid output format: %s\n", output);
            return 1;
        }
        return 0;
    }
    return standin_refuse("kubeadm", argc, argv);
}
