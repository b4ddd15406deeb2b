package ee.ria.xroad.common.message;

import org.apache.http.Header;
import org.apache.http.message.BasicHeader;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * X-Road-Request-Hash by X-Road's own RestRequest: the request as
 * ClientRestMessageProcessor builds it (headers as received, its request id, then
 * setQueryId when the client sent no X-Road-Id), getHash(), and the body digest
 * combined as ServerRestMessageProcessor does.
 *
 * usage: XRoadRestHash VERB PATH QUERY|- REQUEST_ID MESSAGE_ID BODY_FILE|- [NAME VALUE]...
 */
public final class XRoadRestHash {
    private XRoadRestHash() {
    }

    public static void main(String[] args) throws Exception {
        List<Header> headers = new ArrayList<>();
        boolean clientSentId = false;
        for (int i = 6; i + 1 < args.length; i += 2) {
            headers.add(new BasicHeader(args[i], args[i + 1]));
            clientSentId |= "x-road-id".equalsIgnoreCase(args[i]);
        }
        String query = "-".equals(args[2]) ? null : args[2];
        RestRequest request = new RestRequest(args[0], args[1], query, headers, args[3]);
        if (!clientSentId) {
            request.setQueryId(args[4]);
        }
        byte[] digest = request.getHash();
        byte[] body = "-".equals(args[5]) ? new byte[0] : Files.readAllBytes(Path.of(args[5]));
        if (body.length > 0) {
            MessageDigest sha512 = MessageDigest.getInstance("SHA-512");
            sha512.update(digest);
            sha512.update(MessageDigest.getInstance("SHA-512").digest(body));
            digest = sha512.digest();
        }
        System.out.println(Base64.getEncoder().encodeToString(digest));
    }
}
