package gpt2.backend.cuda;

import java.io.IOException;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassModel;
import java.lang.classfile.MethodModel;
import java.lang.classfile.instruction.InvokeInstruction;
import java.lang.reflect.Method;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * Every call the project's main code makes into the JavaCPP CUDA presets
 * (org.bytedeco.cuda.global.{cudart, cublas, nccl, nvrtc}), read from the compiled classes with
 * java.lang.classfile: what reaches NVIDIA's libraries, whatever the source looks like.
 */
final class PresetCalls {
    private PresetCalls() {
    }

    static final Set<String> PRESETS = Set.of("cudart", "cublas", "nccl", "nvrtc");
    private static final String PACKAGE = "org/bytedeco/cuda/global/";

    /** One call site's target: preset (cudart...), method name and JVM descriptor; where it is called from. */
    record Call(String preset, String name, String descriptor, String caller) implements Comparable<Call> {
        String key() {
            return preset + "." + name + descriptor;
        }

        @Override
        public int compareTo(Call o) {
            return key().compareTo(o.key());
        }

        /** The preset's method (its class loaded without running its static initializer, which loads natives). */
        Method method() {
            try {
                Class<?> c = Class.forName("org.bytedeco.cuda.global." + preset, false, PresetCalls.class.getClassLoader());
                for (Method m : c.getDeclaredMethods()) {
                    if (m.getName().equals(name) && descriptorOf(m).equals(descriptor)) return m;
                }
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException(e);
            }
            throw new IllegalStateException("no method " + key());
        }
    }

    static String descriptorOf(Method m) {
        return java.lang.invoke.MethodType.methodType(m.getReturnType(), m.getParameterTypes()).toMethodDescriptorString();
    }

    /** The main classes' folder (target/classes). */
    static Path mainClasses() {
        try {
            return Path.of(KernelCompiler.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Every distinct call target (the first caller found for each). */
    static List<Call> all() throws IOException {
        List<Call> out = new ArrayList<>();
        Set<String> seen = new TreeSet<>();
        try (var files = Files.walk(mainClasses())) {
            for (Path f : files.filter(p -> p.toString().endsWith(".class")).sorted().toList()) {
                ClassModel cm = ClassFile.of().parse(f);
                for (MethodModel mm : cm.methods()) {
                    mm.code().ifPresent(code -> code.forEach(e -> {
                        if (e instanceof InvokeInstruction inv && inv.owner().asInternalName().startsWith(PACKAGE)) {
                            String preset = inv.owner().asInternalName().substring(PACKAGE.length());
                            if (!PRESETS.contains(preset)) return;
                            Call c = new Call(preset, inv.name().stringValue(), inv.type().stringValue(),
                                    cm.thisClass().asInternalName().replace('/', '.') + "." + mm.methodName().stringValue());
                            if (seen.add(c.key())) out.add(c);
                        }
                    }));
                }
            }
        }
        out.sort(null);
        return out;
    }
}
