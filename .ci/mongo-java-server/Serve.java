import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;

/**
 * mongo-java-server on 127.0.0.1:PORT, its documents in the H2 MVStore file FILE (kept across a restart) or, with
 * no FILE, in memory. It announces MongoDB 4.4's wire version (9), the oldest PyMongo 4 accepts: the commands the
 * platform sends are the same in 4.0, the version the server names itself.
 */
public class Serve {
    public static void main(String[] args) throws Exception {
        MongoVersion wire9 = new MongoVersion() {
            public List<Integer> getVersionArray() { return List.of(4, 4, 0); }
            public int getWireVersion() { return 9; }
        };
        MongoBackend backend = args.length > 1 ? new H2Backend(args[1]) : new MemoryBackend();
        backend.version(wire9);
        MongoServer server = new MongoServer(backend);
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdown));  // stores what is written on SIGTERM
        server.bind("127.0.0.1", Integer.parseInt(args[0]));
        System.out.println("listening on 127.0.0.1:" + args[0]);
        Thread.currentThread().join();
    }
}
