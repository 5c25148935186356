{#- The highstate by role. Components are added here as they are built. -#}
base: {}
