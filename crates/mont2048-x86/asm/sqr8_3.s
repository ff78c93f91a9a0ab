mov rax, qword ptr [r14 + 192]
mov rcx, qword ptr [r14 + 200]
mov rsi, qword ptr [r14 + 208]
mov rdi, qword ptr [r14 + 216]
mov r8, qword ptr [r14 + 224]
mov r9, qword ptr [r14 + 232]
mov r10, qword ptr [r14 + 240]
mov r11, qword ptr [r14 + 248]
mov qword ptr [r14 + 512], 0
mov rdx, qword ptr [r15 + 192]
xor r12d, r12d
mov qword ptr [r14 + 192], rax
mov rax, 0
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
mov rdx, qword ptr [r15 + 200]
xor r12d, r12d
mov qword ptr [r14 + 200], rcx
mov rcx, 0
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
mov rdx, qword ptr [r15 + 208]
xor r12d, r12d
mov qword ptr [r14 + 208], rsi
mov rsi, 0
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
mov rdx, qword ptr [r15 + 216]
xor r12d, r12d
mov qword ptr [r14 + 216], rdi
mov rdi, 0
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
mov rdx, qword ptr [r15 + 224]
xor r12d, r12d
mov qword ptr [r14 + 224], r8
mov r8, 0
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
mov rdx, qword ptr [r15 + 232]
xor r12d, r12d
mov qword ptr [r14 + 232], r9
mov r9, 0
mulx r13, r12, qword ptr [r15 + 240]
adcx rdi, r12
adox r8, r13
mulx r13, r12, qword ptr [r15 + 248]
adcx r8, r12
adox r9, r13
adc r9, 0
mov rdx, qword ptr [r15 + 240]
xor r12d, r12d
mov qword ptr [r14 + 240], r10
mov r10, 0
mulx r13, r12, qword ptr [r15 + 248]
adcx r9, r12
adox r10, r13
adc r10, 0
xor r12d, r12d
mov qword ptr [r14 + 248], r11
mov r11, 0
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
