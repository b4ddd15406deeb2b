package ee.ria.xroad.common.identifier;

/** Stand-in for X-Road's ClientId: only Conf.create is used. */
public class ClientId {
    /** The factory the vendored code calls. */
    public static final class Conf extends ClientId {
        public static Conf create(String p1, String p2, String p3, String p4) {
            return new Conf();
        }
    }
}
