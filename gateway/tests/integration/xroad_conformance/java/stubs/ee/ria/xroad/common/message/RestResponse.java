package ee.ria.xroad.common.message;

import ee.ria.xroad.common.identifier.ClientId;

/** Stand-in: only requests are hashed here. */
public class RestResponse extends RestMessage {
    public static RestResponse of(byte[] messageBytes) {
        throw new UnsupportedOperationException("responses are not parsed here");
    }

    @Override
    protected byte[] toByteArray() {
        throw new UnsupportedOperationException();
    }

    @Override
    public byte[] getFilteredMessage() {
        throw new UnsupportedOperationException();
    }

    @Override
    public ClientId getSender() {
        return null;
    }
}
