package ee.ria.xroad.common.crypto;

import java.security.MessageDigest;

/** Stand-in for X-Road's Digests: SHA-512, X-Road's default digest algorithm. */
public final class Digests {
    public static final String DEFAULT_DIGEST_ALGORITHM = "SHA-512";

    private Digests() {
    }

    public static byte[] calculateDigest(String algorithm, byte[] data) throws Exception {
        return MessageDigest.getInstance(algorithm).digest(data);
    }
}
