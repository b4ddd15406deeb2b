package lombok;

/** Stand-in: the vendored code's getters are not used. */
public @interface Getter {
}
