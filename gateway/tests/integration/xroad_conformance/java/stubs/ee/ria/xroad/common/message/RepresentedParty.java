package ee.ria.xroad.common.message;

/** Stand-in for X-Road's RepresentedParty. */
public class RepresentedParty {
    public RepresentedParty(String partyClass, String partyCode) {
    }
}
