mov rax, qword ptr [r14 + 0]
mov rcx, qword ptr [r14 + 8]
mov rsi, qword ptr [r14 + 16]
mov rdi, qword ptr [r14 + 24]
mov r8, qword ptr [r14 + 32]
mov r9, qword ptr [r14 + 40]
mov r10, qword ptr [r14 + 48]
mov r11, qword ptr [r14 + 56]
mov qword ptr [r14 + 512], 0
mov rdx, qword ptr [r15 + 0]
xor r12d, r12d
mov qword ptr [r14 + 0], rax
mov rax, 0
mulx r13, r12, qword ptr [r15 + 8]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 16]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 24]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 32]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 40]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 48]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 56]
adcx r11, r12
adox rax, r13
adc rax, 0
mov rdx, qword ptr [r15 + 8]
xor r12d, r12d
mov qword ptr [r14 + 8], rcx
mov rcx, 0
mulx r13, r12, qword ptr [r15 + 16]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 24]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 32]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 40]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 48]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 56]
adcx rax, r12
adox rcx, r13
adc rcx, 0
mov rdx, qword ptr [r15 + 16]
xor r12d, r12d
mov qword ptr [r14 + 16], rsi
mov rsi, 0
mulx r13, r12, qword ptr [r15 + 24]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 32]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 40]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 48]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 56]
adcx rcx, r12
adox rsi, r13
adc rsi, 0
mov rdx, qword ptr [r15 + 24]
xor r12d, r12d
mov qword ptr [r14 + 24], rdi
mov rdi, 0
mulx r13, r12, qword ptr [r15 + 32]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 40]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 48]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 56]
adcx rsi, r12
adox rdi, r13
adc rdi, 0
mov rdx, qword ptr [r15 + 32]
xor r12d, r12d
mov qword ptr [r14 + 32], r8
mov r8, 0
mulx r13, r12, qword ptr [r15 + 40]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 48]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 56]
adcx rdi, r12
adox r8, r13
adc r8, 0
mov rdx, qword ptr [r15 + 40]
xor r12d, r12d
mov qword ptr [r14 + 40], r9
mov r9, 0
mulx r13, r12, qword ptr [r15 + 48]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 56]
adcx r8, r12
adox r9, r13
adc r9, 0
mov rdx, qword ptr [r15 + 48]
xor r12d, r12d
mov qword ptr [r14 + 48], r10
mov r10, 0
mulx r13, r12, qword ptr [r15 + 56]
adcx r9, r12
adox r10, r13
adc r10, 0
xor r12d, r12d
mov qword ptr [r14 + 56], r11
mov r11, 0
mov r12, qword ptr [r14 + 512]
neg r12
adc rax, qword ptr [r14 + 64]
adc rcx, qword ptr [r14 + 72]
adc rsi, qword ptr [r14 + 80]
adc rdi, qword ptr [r14 + 88]
adc r8, qword ptr [r14 + 96]
adc r9, qword ptr [r14 + 104]
adc r10, qword ptr [r14 + 112]
adc r11, qword ptr [r14 + 120]
mov r12, 0
adc r12, 0
mov qword ptr [r14 + 512], r12
mov rdx, qword ptr [r15 + 0]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx rax, r12
mov qword ptr [r14 + 64], rax
mov rax, 0
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx r11, r12
adox rax, r13
adc rax, 0
mov rdx, qword ptr [r15 + 8]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx rcx, r12
mov qword ptr [r14 + 72], rcx
mov rcx, 0
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx rax, r12
adox rcx, r13
adc rcx, 0
mov rdx, qword ptr [r15 + 16]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx rsi, r12
mov qword ptr [r14 + 80], rsi
mov rsi, 0
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx rcx, r12
adox rsi, r13
adc rsi, 0
mov rdx, qword ptr [r15 + 24]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx rdi, r12
mov qword ptr [r14 + 88], rdi
mov rdi, 0
adox r8, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx rsi, r12
adox rdi, r13
adc rdi, 0
mov rdx, qword ptr [r15 + 32]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx r8, r12
mov qword ptr [r14 + 96], r8
mov r8, 0
adox r9, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx rdi, r12
adox r8, r13
adc r8, 0
mov rdx, qword ptr [r15 + 40]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx r9, r12
mov qword ptr [r14 + 104], r9
mov r9, 0
adox r10, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx r8, r12
adox r9, r13
adc r9, 0
mov rdx, qword ptr [r15 + 48]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx r10, r12
mov qword ptr [r14 + 112], r10
mov r10, 0
adox r11, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx r9, r12
adox r10, r13
adc r10, 0
mov rdx, qword ptr [r15 + 56]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 64]
adcx r11, r12
mov qword ptr [r14 + 120], r11
mov r11, 0
adox rax, r13
mulx r13, r12, qword ptr [r15 + 72]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 80]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 88]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 96]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 104]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 112]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 120]
adcx r10, r12
adox r11, r13
adc r11, 0
mov r12, qword ptr [r14 + 512]
neg r12
adc rax, qword ptr [r14 + 128]
adc rcx, qword ptr [r14 + 136]
adc rsi, qword ptr [r14 + 144]
adc rdi, qword ptr [r14 + 152]
adc r8, qword ptr [r14 + 160]
adc r9, qword ptr [r14 + 168]
adc r10, qword ptr [r14 + 176]
adc r11, qword ptr [r14 + 184]
mov r12, 0
adc r12, 0
mov qword ptr [r14 + 512], r12
mov rdx, qword ptr [r15 + 0]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx rax, r12
mov qword ptr [r14 + 128], rax
mov rax, 0
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx r11, r12
adox rax, r13
adc rax, 0
mov rdx, qword ptr [r15 + 8]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx rcx, r12
mov qword ptr [r14 + 136], rcx
mov rcx, 0
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx rax, r12
adox rcx, r13
adc rcx, 0
mov rdx, qword ptr [r15 + 16]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx rsi, r12
mov qword ptr [r14 + 144], rsi
mov rsi, 0
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx rcx, r12
adox rsi, r13
adc rsi, 0
mov rdx, qword ptr [r15 + 24]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx rdi, r12
mov qword ptr [r14 + 152], rdi
mov rdi, 0
adox r8, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx rsi, r12
adox rdi, r13
adc rdi, 0
mov rdx, qword ptr [r15 + 32]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx r8, r12
mov qword ptr [r14 + 160], r8
mov r8, 0
adox r9, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx rdi, r12
adox r8, r13
adc r8, 0
mov rdx, qword ptr [r15 + 40]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx r9, r12
mov qword ptr [r14 + 168], r9
mov r9, 0
adox r10, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx r8, r12
adox r9, r13
adc r9, 0
mov rdx, qword ptr [r15 + 48]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx r10, r12
mov qword ptr [r14 + 176], r10
mov r10, 0
adox r11, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx r9, r12
adox r10, r13
adc r10, 0
mov rdx, qword ptr [r15 + 56]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 128]
adcx r11, r12
mov qword ptr [r14 + 184], r11
mov r11, 0
adox rax, r13
mulx r13, r12, qword ptr [r15 + 136]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 144]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 152]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 160]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 168]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 176]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 184]
adcx r10, r12
adox r11, r13
adc r11, 0
mov r12, qword ptr [r14 + 512]
neg r12
adc rax, qword ptr [r14 + 192]
adc rcx, qword ptr [r14 + 200]
adc rsi, qword ptr [r14 + 208]
adc rdi, qword ptr [r14 + 216]
adc r8, qword ptr [r14 + 224]
adc r9, qword ptr [r14 + 232]
adc r10, qword ptr [r14 + 240]
adc r11, qword ptr [r14 + 248]
mov r12, 0
adc r12, 0
mov qword ptr [r14 + 512], r12
mov rdx, qword ptr [r15 + 0]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx rax, r12
mov qword ptr [r14 + 192], rax
mov rax, 0
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx r11, r12
adox rax, r13
adc rax, 0
mov rdx, qword ptr [r15 + 8]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx rcx, r12
mov qword ptr [r14 + 200], rcx
mov rcx, 0
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx rax, r12
adox rcx, r13
adc rcx, 0
mov rdx, qword ptr [r15 + 16]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx rsi, r12
mov qword ptr [r14 + 208], rsi
mov rsi, 0
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx rcx, r12
adox rsi, r13
adc rsi, 0
mov rdx, qword ptr [r15 + 24]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx rdi, r12
mov qword ptr [r14 + 216], rdi
mov rdi, 0
adox r8, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx rsi, r12
adox rdi, r13
adc rdi, 0
mov rdx, qword ptr [r15 + 32]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx r8, r12
mov qword ptr [r14 + 224], r8
mov r8, 0
adox r9, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx rdi, r12
adox r8, r13
adc r8, 0
mov rdx, qword ptr [r15 + 40]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx r9, r12
mov qword ptr [r14 + 232], r9
mov r9, 0
adox r10, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx r10, r12
adox r11, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx r8, r12
adox r9, r13
adc r9, 0
mov rdx, qword ptr [r15 + 48]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx r10, r12
mov qword ptr [r14 + 240], r10
mov r10, 0
adox r11, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx r11, r12
adox rax, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx r9, r12
adox r10, r13
adc r10, 0
mov rdx, qword ptr [r15 + 56]
xor r12d, r12d
mulx r13, r12, qword ptr [r15 + 192]
adcx r11, r12
mov qword ptr [r14 + 248], r11
mov r11, 0
adox rax, r13
mulx r13, r12, qword ptr [r15 + 200]
adcx rax, r12
adox rcx, r13
mulx r13, r12, qword ptr [r15 + 208]
adcx rcx, r12
adox rsi, r13
mulx r13, r12, qword ptr [r15 + 216]
adcx rsi, r12
adox rdi, r13
mulx r13, r12, qword ptr [r15 + 224]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 232]
adcx r8, r12
adox r9, r13
mulx r13, r12, qword ptr [r15 + 240]
adcx r9, r12
adox r10, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx r10, r12
adox r11, r13
adc r11, 0
mov r12, qword ptr [r14 + 512]
add rax, r12
adc rcx, 0
adc rsi, 0
adc rdi, 0
adc r8, 0
adc r9, 0
adc r10, 0
adc r11, 0
mov r13, 0
adc r13, 0
add rax, qword ptr [r14 + 256]
adc rcx, qword ptr [r14 + 264]
adc rsi, qword ptr [r14 + 272]
adc rdi, qword ptr [r14 + 280]
adc r8, qword ptr [r14 + 288]
adc r9, qword ptr [r14 + 296]
adc r10, qword ptr [r14 + 304]
adc r11, qword ptr [r14 + 312]
adc r13, 0
mov qword ptr [r14 + 256], rax
mov qword ptr [r14 + 264], rcx
mov qword ptr [r14 + 272], rsi
mov qword ptr [r14 + 280], rdi
mov qword ptr [r14 + 288], r8
mov qword ptr [r14 + 296], r9
mov qword ptr [r14 + 304], r10
mov qword ptr [r14 + 312], r11
