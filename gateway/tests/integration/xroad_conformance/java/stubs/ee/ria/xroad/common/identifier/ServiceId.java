package ee.ria.xroad.common.identifier;

/** Stand-in for X-Road's ServiceId: only Conf.create is used. */
public class ServiceId {
    /** The factory the vendored code calls. */
    public static final class Conf extends ServiceId {
        public static Conf create(String p1, String p2, String p3, String p4, String p5) {
            return new Conf();
        }
    }
}
